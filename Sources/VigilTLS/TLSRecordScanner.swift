/// Walks the TLS records a client sends before its handshake completes, reading only their
/// headers, to catch an alert sent in the clear. A TLS 1.3 client that rejects vigild's
/// certificate says so (`unknown_ca`, `bad_certificate` …) in a plaintext alert, because it has
/// not switched to its handshake keys yet; BoringSSL, expecting an encrypted record, reports
/// only `BAD_PACKET_LENGTH`. The alert the client sent is the better reason. Sans-IO: fed
/// bytes in any pieces.
struct TLSRecordScanner {
    /// The last alert the client sent in the clear: its description byte (RFC 8446 §6).
    private(set) var alert: UInt8?
    private var header: [UInt8] = []
    /// Bytes of the current record's body still to come.
    private var remaining = 0
    /// The current record is a two-byte alert: its bytes so far.
    private var alertBody: [UInt8]?

    static let alertRecord: UInt8 = 0x15
    static let headerLength = 5

    mutating func scan<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if remaining == 0 {
                header.append(bytes[index])
                index = bytes.index(after: index)
                guard header.count == Self.headerLength else { continue }
                remaining = Int(header[3]) << 8 | Int(header[4])
                alertBody = header[0] == Self.alertRecord && remaining == 2 ? [] : nil
                header.removeAll(keepingCapacity: true)
                continue
            }
            let take = min(remaining, bytes.distance(from: index, to: bytes.endIndex))
            let end = bytes.index(index, offsetBy: take)
            if alertBody != nil {
                alertBody! += bytes[index..<end]
                if alertBody!.count == 2 { alert = alertBody![1] }
            }
            remaining -= take
            index = end
        }
    }

    /// An alert description's name (RFC 8446 §6, RFC 5246 §7.2), or its number.
    static func name(_ description: UInt8) -> String {
        switch description {
        case 0: "close_notify"
        case 10: "unexpected_message"
        case 20: "bad_record_mac"
        case 40: "handshake_failure"
        case 42: "bad_certificate"
        case 43: "unsupported_certificate"
        case 44: "certificate_revoked"
        case 45: "certificate_expired"
        case 46: "certificate_unknown"
        case 47: "illegal_parameter"
        case 48: "unknown_ca"
        case 49: "access_denied"
        case 50: "decode_error"
        case 51: "decrypt_error"
        case 70: "protocol_version"
        case 71: "insufficient_security"
        case 80: "internal_error"
        case 86: "inappropriate_fallback"
        case 90: "user_canceled"
        case 109: "missing_extension"
        case 110: "unsupported_extension"
        case 112: "unrecognized_name"
        case 116: "certificate_required"
        case 120: "no_application_protocol"
        default: "alert \(description)"
        }
    }
}
