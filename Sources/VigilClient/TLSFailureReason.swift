import NIOSSL
import VigilTLS

#if canImport(Glibc)
    import Glibc
#endif

/// Why a TLS handshake failed, in words an operator can act on: NIOSSL reports every chain
/// problem as `CERTIFICATE_VERIFY_FAILED` (with a build path) and a name mismatch on an IP
/// address as `Couldn't find <none>`. The server's own certificate, which BoringSSL keeps even
/// when it rejects it, says which problem it was.
enum TLSFailureReason {
    /// - Parameters:
    ///   - leaf: the server's certificate, when the handshake got that far.
    ///   - trust: what certificates were checked against (the system's store, a ca_file).
    static func describe(
        _ error: any Error, leaf: NIOSSLCertificate?, host: String, trust: String, now: time_t = time(nil)
    ) -> String {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return
                "the certificate is for \(leaf.map(TLSNames.of) ?? "other names"), not \(host) (hostname verification)"
        }
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            guard let leaf else { return "the server's certificate could not be verified against \(trust)" }
            let names = TLSNames.of(leaf)
            if now > leaf.notValidAfter {
                return "the certificate for \(names) expired at \(TLSNames.date(leaf.notValidAfter))"
            }
            if now < leaf.notValidBefore {
                return "the certificate for \(names) is not valid before \(TLSNames.date(leaf.notValidBefore))"
            }
            return "the certificate for \(names) is not signed by a CA trusted here (\(trust))"
        }
        // Other BoringSSL failures: the reason code is the part worth reading.
        if let code = TLSNames.reasonCode(in: error) {
            let words = code.lowercased().replacingOccurrences(of: "_", with: " ")
            return code == "WRONG_VERSION_NUMBER" ? "\(words) (is the server speaking TLS on this port?)" : words
        }
        return text
    }
}
