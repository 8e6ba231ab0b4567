import NIOSSL

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
            return "the certificate is for \(leaf.map(names) ?? "other names"), not \(host) (hostname verification)"
        }
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            guard let leaf else { return "the server's certificate could not be verified against \(trust)" }
            let names = names(leaf)
            if now > leaf.notValidAfter {
                return "the certificate for \(names) expired at \(date(leaf.notValidAfter))"
            }
            if now < leaf.notValidBefore {
                return "the certificate for \(names) is not valid before \(date(leaf.notValidBefore))"
            }
            return "the certificate for \(names) is not signed by a CA trusted here (\(trust))"
        }
        // Other BoringSSL failures: the reason code is the part worth reading
        // ("…:OPENSSL_internal:WRONG_VERSION_NUMBER at /path/file.cc:123").
        if let marker = text.range(of: "OPENSSL_internal:") {
            let code = text[marker.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            let words = code.lowercased().replacingOccurrences(of: "_", with: " ")
            return code == "WRONG_VERSION_NUMBER" ? "\(words) (is the server speaking TLS on this port?)" : words
        }
        return text
    }

    /// The DNS names and addresses a certificate is for, or "no names".
    static func names(_ certificate: NIOSSLCertificate) -> String {
        let names = certificate._subjectAlternativeNames().compactMap { name -> String? in
            switch name.nameType {
            case .dnsName: String(decoding: name.contents, as: UTF8.self)
            case .ipAddress: Self.address(Array(name.contents))
            default: nil
            }
        }
        return names.isEmpty ? "no names (no subjectAltName)" : names.joined(separator: ", ")
    }

    /// An IP address subjectAltName's 4 or 16 bytes, as text.
    static func address(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `2026-12-05 17:04:44 UTC`.
    static func date(_ seconds: time_t) -> String {
        var moment = seconds
        var parts = tm()
        gmtime_r(&moment, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
