/// A `ws://` or `wss://` URL taken apart: what vigild dials (a proxy's upstream, later a
/// monitor target) and what `vigil-load` connects to.
public struct WebSocketURL: Sendable, Hashable, CustomStringConvertible {
    public var secure: Bool
    /// A name or an address; IPv6 addresses without their brackets.
    public var host: String
    public var port: Int
    /// Starts with `/`; `/` when the URL has no path.
    public var path: String
    /// Without the `?`; empty when there is none.
    public var query: String
    /// Whether the URL was written with a path (even `/`): a route's prefix is then replaced
    /// by it; without one, the client's path goes upstream as it came (nginx's `proxy_pass`).
    public var hasPath: Bool

    public init(secure: Bool, host: String, port: Int, path: String = "/", query: String = "", hasPath: Bool = true) {
        self.secure = secure
        self.host = host
        self.port = port
        self.path = path
        self.query = query
        self.hasPath = hasPath
    }

    /// Parses `ws://HOST[:PORT][/PATH][?QUERY]` or `wss://…`; the port defaults to 80 and 443.
    /// `nil` for anything else (other schemes, user info, fragments, spaces, a bad port).
    public init?(_ text: String) {
        let secure: Bool
        let rest: Substring
        if text.hasPrefix("ws://") {
            (secure, rest) = (false, text.dropFirst("ws://".count))
        } else if text.hasPrefix("wss://") {
            (secure, rest) = (true, text.dropFirst("wss://".count))
        } else {
            return nil
        }
        guard !text.contains("#"), text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        let target = rest.dropFirst(authority.count)
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        let host: Substring
        var port = secure ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let parsed = Self.port(after.dropFirst()) else { return nil }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let parsed = Self.port(authority[authority.index(after: colon)...]) else { return nil }
            port = parsed
        } else {
            host = authority
        }
        guard !host.isEmpty else { return nil }
        let path: Substring
        let query: Substring
        if let mark = target.firstIndex(of: "?") {
            (path, query) = (target[..<mark], target[target.index(after: mark)...])
        } else {
            (path, query) = (target, "")
        }
        self.init(
            secure: secure, host: String(host), port: port, path: path.isEmpty ? "/" : String(path),
            query: String(query), hasPath: !path.isEmpty)
    }

    private static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(text),
            (1...65535).contains(port)
        else { return nil }
        return port
    }

    /// `host:port` as the `Host` header carries it (the port only when it is not the scheme's).
    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// The request target: path, and `?query` when there is one.
    public var requestTarget: String { query.isEmpty ? path : "\(path)?\(query)" }

    /// As written: `ws://10.0.0.5:3000` keeps having no path.
    public var description: String {
        "\(secure ? "wss" : "ws")://\(hostHeader)" + (hasPath ? path : "") + (query.isEmpty ? "" : "?\(query)")
    }
}
