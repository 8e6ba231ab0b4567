import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// What an operator reads of a certificate and of a BoringSSL error: the names a certificate
/// is for, dates, and the reason code of an error. Shared by both roles (the listener's
/// certificates, an upstream's or a target's).
public enum TLSNames {
    /// The DNS names and addresses a certificate is for, or "no names".
    public static func of(_ certificate: NIOSSLCertificate) -> String {
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
    public static func address(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `2026-12-05 17:04:44 UTC`.
    public static func date(_ seconds: time_t) -> String {
        var moment = seconds
        var parts = tm()
        gmtime_r(&moment, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// BoringSSL's reason code in an error's text (`…:OPENSSL_internal:WRONG_VERSION_NUMBER at
    /// /path/file.cc:123` → `WRONG_VERSION_NUMBER`), the part worth reading; `nil` if none.
    public static func reasonCode(in error: any Error) -> String? {
        let text = "\(error)"
        guard let marker = text.range(of: "OPENSSL_internal:") else { return nil }
        let code = text[marker.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        return code.isEmpty ? nil : String(code)
    }

    /// `TLSv1.3`, as OpenSSL and nginx's `$ssl_protocol` spell it.
    public static func text(_ version: TLSVersion) -> String {
        switch version {
        case .tlsv1: "TLSv1"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }
}
