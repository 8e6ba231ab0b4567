import NIOCore
import NIOSSL
import VigilRegistry

#if canImport(Glibc)
    import Glibc
#endif

/// A failed TLS handshake on the listener: the reason it is counted by and the words it is
/// logged with.
public struct TLSHandshakeFailure: Sendable {
    public var reason: TLSHandshakeFailureReason
    /// BoringSSL's reason in words (`unsupported protocol`), or what happened.
    public var detail: String

    public init(reason: TLSHandshakeFailureReason, detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// Classifies an error the TLS handler raised before its handshake completed; `alert`, one
    /// the client sent in the clear (see `TLSRecordScanner`), is its own reason and comes first.
    static func classify(_ error: any Error, clientAlert alert: UInt8? = nil) -> TLSHandshakeFailure {
        if let alert {
            let words = "the client sent alert \(TLSRecordScanner.name(alert))"
            switch alert {
            case 42...46, 48: return TLSHandshakeFailure(reason: .certificateRejected, detail: words)
            case 70: return TLSHandshakeFailure(reason: .protocolVersion, detail: words)
            case 71: return TLSHandshakeFailure(reason: .noSharedCipher, detail: words)
            case 0, 90: return TLSHandshakeFailure(reason: .closed, detail: words)
            default: return TLSHandshakeFailure(reason: .protocolError, detail: words)
            }
        }
        if let ssl = error as? NIOSSLError, ssl == .uncleanShutdown {
            return TLSHandshakeFailure(reason: .closed, detail: "the client closed the connection mid-handshake")
        }
        if let channel = error as? ChannelError, channel == .eof || channel == .ioOnClosedChannel {
            return TLSHandshakeFailure(reason: .closed, detail: "the client closed the connection mid-handshake")
        }
        if let io = error as? IOError, [ECONNRESET, EPIPE, ETIMEDOUT].contains(io.errnoCode) {
            return TLSHandshakeFailure(reason: .closed, detail: "the connection was reset mid-handshake")
        }
        // The TLS handler's words when the connection ends before the handshake does.
        if "\(error)".contains("EOF during handshake") {
            return TLSHandshakeFailure(reason: .closed, detail: "the client closed the connection mid-handshake")
        }
        guard let code = TLSNames.reasonCode(in: error) else {
            return TLSHandshakeFailure(reason: .protocolError, detail: "\(error)")
        }
        let words = code.lowercased().replacingOccurrences(of: "_", with: " ")
        let reason: TLSHandshakeFailureReason
        switch code {
        case "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION":
            reason = .protocolVersion
        case "NO_SHARED_CIPHER", "NO_SHARED_GROUP", "NO_COMMON_SIGNATURE_ALGORITHMS":
            reason = .noSharedCipher
        case _ where code.contains("_ALERT_") && (code.contains("CERTIFICATE") || code.contains("UNKNOWN_CA")):
            reason = .certificateRejected
        default:
            reason = .protocolError
        }
        return TLSHandshakeFailure(reason: reason, detail: words)
    }
}
