/// A browser's `Origin`: scheme, host (lowercased) and port (the scheme's default when absent).
public struct Origin: Sendable, Hashable, CustomStringConvertible {
    public let scheme: String
    public let host: String
    public let port: Int

    public init?(_ text: String) {
        guard let separator = text.range(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound].lowercased()
        let authority = text[separator.upperBound...]
        guard ["http", "https"].contains(scheme), !authority.isEmpty, !authority.contains("/"), !authority.contains("@"),
            let (host, port) = Self.split(authority, scheme: scheme)
        else { return nil }
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    public init(scheme: String, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }

    /// `host[:port]` → lowercased host and port; brackets kept off IPv6 hosts.
    static func split(_ authority: Substring, scheme: String) -> (String, Int)? {
        var host = authority
        var port = defaultPort(scheme)
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let parsed = Int(rest.dropFirst()), (1...65535).contains(parsed) else { return nil }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else { return nil }
            port = parsed
        }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else { return nil }
        return (host.lowercased(), port)
    }

    /// The `Host` header names the same host and port (the port defaulting to this origin's
    /// scheme's, as the browser's request would leave it out).
    public func isSameOrigin(asHost header: String) -> Bool {
        guard let (host, port) = Self.split(header[...], scheme: scheme) else { return false }
        return host == self.host && port == self.port
    }

    public var description: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == Self.defaultPort(scheme) ? "\(scheme)://\(name)" : "\(scheme)://\(name):\(port)"
    }
}

/// One entry of `allowed_origins`: an exact origin, a wildcard over subdomains
/// (`https://*.example.com`), or `*` for any origin.
public enum OriginPattern: Sendable, Hashable, CustomStringConvertible {
    case any
    case exact(Origin)
    /// Any host ending in `.suffix` (not `suffix` itself), with this scheme and port.
    case subdomains(scheme: String, suffix: String, port: Int)

    public init?(_ text: String) {
        if text == "*" {
            self = .any
            return
        }
        if let marker = text.range(of: "://*.") {
            let scheme = String(text[..<marker.lowerBound]).lowercased()
            guard let probe = Origin("\(scheme)://x.\(text[marker.upperBound...])") else { return nil }
            self = .subdomains(scheme: probe.scheme, suffix: String(probe.host.dropFirst(2)), port: probe.port)
            return
        }
        guard let origin = Origin(text) else { return nil }
        self = .exact(origin)
    }

    public func matches(_ origin: Origin) -> Bool {
        switch self {
        case .any: true
        case .exact(let allowed): allowed == origin
        case .subdomains(let scheme, let suffix, let port):
            origin.scheme == scheme && origin.port == port && origin.host.hasSuffix("." + suffix)
        }
    }

    public var description: String {
        switch self {
        case .any: "*"
        case .exact(let origin): origin.description
        case .subdomains(let scheme, let suffix, let port):
            Origin(scheme: scheme, host: "*." + suffix, port: port).description
        }
    }
}
