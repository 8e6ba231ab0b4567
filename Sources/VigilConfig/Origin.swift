import Glibc

/// A web origin, as clients send it in `Origin` and operators write it in `allowed_origins`:
/// scheme, host and port, held in one canonical form so that equal origins compare equal.
///
/// Read the way gorilla/websocket reads it (its `CheckOrigin` compares `url.Parse(origin).Host`
/// with `Host`), with the rest of a URL's equivalences folded (docs/hardening.md#origins):
/// - the scheme is `http` or `https` and, like the host, compared without case;
/// - the port defaults to the scheme's (80, 443); an empty port (`h:`) is the default too;
/// - a path is ignored: `golang.org/x/net/websocket` sends the origin its caller wrote, and Go
///   code writes `http://host/`;
/// - one trailing dot of a domain name is dropped (`h.` names `h`, as DNS reads it);
/// - an IPv6 address sits in brackets and is kept in its canonical text (RFC 5952), so
///   `[0:0::1]` is `[::1]`;
/// - userinfo, a query or a fragment, another scheme, an empty host or a host character outside
///   RFC 3986's unreserved set leave no origin to compare (`nil`): opaque, like `null`.
public struct Origin: Sendable, Hashable, CustomStringConvertible {
    public let scheme: String
    /// Lowercased, without a trailing dot; an IPv6 address without its brackets.
    public let host: String
    public let port: Int

    /// An `Origin` header's value, any path ignored; `nil` when it is no origin vigild can compare.
    public init?(_ text: String) {
        guard let (origin, _) = Self.parse(text) else { return nil }
        self = origin
    }

    public init(scheme: String, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// The origin and the path written after it (empty when none), for callers that refuse a path.
    static func parse(_ text: String) -> (Origin, path: Substring.UTF8View)? {
        let bytes = text[...].utf8
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let scheme = String(decoding: bytes[..<colon].map(Self.lowercased), as: UTF8.self)
        guard scheme == "http" || scheme == "https" else { return nil }
        let afterColon = bytes[bytes.index(after: colon)...]
        guard afterColon.starts(with: "//".utf8) else { return nil }
        let rest = afterColon.dropFirst(2)
        // A query or a fragment anywhere, or userinfo in the authority: a URL, not an origin.
        guard !rest.contains(UInt8(ascii: "?")), !rest.contains(UInt8(ascii: "#")) else { return nil }
        let pathStart = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let authority = rest[..<pathStart]
        let path = rest[pathStart...]
        guard !authority.contains(UInt8(ascii: "@")), path.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
            let (host, port) = Self.hostAndPort(authority, defaultPort: Self.defaultPort(scheme))
        else { return nil }
        return (Origin(scheme: scheme, host: host, port: port), path)
    }

    static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }

    /// `host[:port]` (a `Host` header, or an origin's authority) → its canonical host and port.
    static func hostAndPort(_ authority: Substring.UTF8View, defaultPort: Int) -> (String, Int)? {
        var name = authority
        var portText = authority[authority.endIndex...]
        var host: String
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            name = authority[authority.index(after: authority.startIndex)..<close]
            portText = authority[authority.index(after: close)...]
            if !portText.isEmpty {
                guard portText.first == UInt8(ascii: ":") else { return nil }
                portText = portText.dropFirst()
            }
            guard let address = Self.canonicalIPv6(name) else { return nil }
            host = address
        } else {
            if let colon = authority.firstIndex(of: UInt8(ascii: ":")) {
                name = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            }
            if name.last == UInt8(ascii: "."), name.count > 1 { name = name.dropLast() }
            guard !name.isEmpty, name.first != UInt8(ascii: "."), name.last != UInt8(ascii: "."),
                name.allSatisfy(Self.isUnreserved), !name.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]),
                !Self.containsEmptyLabel(name)
            else { return nil }
            host = String(decoding: name.map(Self.lowercased), as: UTF8.self)
        }
        var port = defaultPort
        if !portText.isEmpty {
            guard portText.count <= 5, portText.allSatisfy({ (0x30...0x39).contains($0) }),
                let parsed = Int(String(decoding: portText, as: UTF8.self)), (1...65535).contains(parsed)
            else { return nil }
            port = parsed
        }
        return (host, port)
    }

    /// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_`, `~`.
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }

    private static func containsEmptyLabel(_ name: Substring.UTF8View) -> Bool {
        zip(name, name.dropFirst()).contains { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    /// An IPv6 address's canonical text (RFC 5952, as `inet_ntop` writes it), or `nil` when the
    /// text is not one (a zone identifier included: browsers never send one).
    private static func canonicalIPv6(_ text: Substring.UTF8View) -> String? {
        guard !text.isEmpty, text.count < Int(INET6_ADDRSTRLEN),
            text.allSatisfy({
                (0x30...0x39).contains($0) || (0x61...0x66).contains($0 | 0x20) || $0 == 0x3A || $0 == 0x2E
            })
        else { return nil }
        var address = in6_addr()
        guard inet_pton(AF_INET6, String(decoding: text, as: UTF8.self), &address) == 1 else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The `Host` header names the same host and port (the port defaulting to this origin's
    /// scheme's, as the browser's request would leave it out).
    public func isSameOrigin(asHost header: String) -> Bool {
        guard let (host, port) = Self.hostAndPort(header[...].utf8, defaultPort: Self.defaultPort(scheme)) else {
            return false
        }
        return host == self.host && port == self.port
    }

    public var description: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == Self.defaultPort(scheme) ? "\(scheme)://\(name)" : "\(scheme)://\(name):\(port)"
    }
}

/// One entry of `allowed_origins`: an exact origin, a wildcard over subdomains
/// (`https://*.example.com`), or `*` for any origin. Written as an origin is, with at most a
/// `/` after it (`https://app.example.com/`); held and shown in canonical form.
public enum OriginPattern: Sendable, Hashable, CustomStringConvertible {
    case any
    case exact(Origin)
    /// Any host ending in `.suffix` (not `suffix` itself), with this scheme and port.
    case subdomains(scheme: String, suffix: String, port: Int)

    /// Why an entry is not a pattern.
    public enum Refusal: Error, Sendable, Equatable {
        /// Not an origin, a wildcard or `*`.
        case notAnOrigin
        /// An origin followed by a path other than `/` (the path as written).
        case path(String)
    }

    public init(_ text: String) throws(Refusal) {
        if text == "*" {
            self = .any
            return
        }
        let wildcard = text.firstRange(of: "://*.")
        let written = wildcard.map { "\(text[..<$0.lowerBound])://x.\(text[$0.upperBound...])" } ?? text
        guard let (origin, path) = Origin.parse(written) else { throw .notAnOrigin }
        guard path.isEmpty || path.elementsEqual("/".utf8) else { throw .path(String(Substring(path))) }
        guard wildcard != nil else {
            self = .exact(origin)
            return
        }
        // `x.` stood in for the `*.`; an IPv6 address has no subdomains.
        guard origin.host.hasPrefix("x."), !origin.host.contains(":") else { throw .notAnOrigin }
        self = .subdomains(scheme: origin.scheme, suffix: String(origin.host.dropFirst(2)), port: origin.port)
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
