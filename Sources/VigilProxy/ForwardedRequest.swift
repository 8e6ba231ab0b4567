import NIOHTTP1
import VigilClient
import VigilConfig
import VigilText

/// The upgrade request vigild sends upstream for a client's handshake: the target built by the
/// route's rule (`UpstreamTarget`), the client's subprotocol offer, its end-to-end headers, and the
/// `X-Forwarded-*` and `Forwarded` (RFC 7239) headers saying who asked. Pure, so every rule is
/// a unit test.
enum ForwardedRequest {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) and the handshake's own, never forwarded as they
    /// came. `Sec-WebSocket-Extensions` goes upstream as vigild parsed it, permessage-deflate
    /// offers only (`UpstreamDial`): vigild must know what every RSV bit means on both legs.
    static let notForwarded: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "sec-websocket-key", "sec-websocket-version",
        "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions", "forwarded",
    ]

    /// - Parameters:
    ///   - clientAddress: the address vigild received the request from, as far as it believes:
    ///     the client, a PROXY header's client, or the trusted balancer that appended the
    ///     client to the request's own `X-Forwarded-For`.
    ///   - scheme: how the client reached vigild: `https` over TLS, else `http`.
    static func make(
        for request: HTTPRequestHead, to upstream: WebSocketURL, clientAddress: String, scheme: String,
        rules: ProxyRules
    ) -> UpgradeRequest {
        let (clientPath, clientQuery) = RequestTarget.split(request.uri)
        let target: String
        switch rules.target {
        case .fixed:
            target = upstream.requestTarget
        case .append:
            target = appendedTarget(
                upstream: upstream, clientPath: String(clientPath), clientQuery: String(clientQuery))
        case .replacingPrefix:
            target = routedTarget(
                upstream: upstream, routePath: rules.routePath, clientPath: clientPath, clientQuery: clientQuery)
        }
        let subprotocols = request.headers[canonicalForm: "sec-websocket-protocol"].map(String.init).filter {
            !$0.isEmpty
        }
        // Headers named in Connection are hop-by-hop too.
        let named = Set(request.headers[canonicalForm: "connection"].map { $0.lowercased() })
        var headers: [HTTPHeaderField] = []
        for (name, value) in request.headers {
            let lower = name.lowercased()
            guard !notForwarded.contains(lower), !named.contains(lower), !lower.hasPrefix("x-forwarded-") else {
                continue
            }
            headers.append(HTTPHeaderField(name: name, value: value))
        }
        let host = request.headers.first(name: "host")
        let previousFor = request.headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
        headers.append(
            HTTPHeaderField(
                name: "X-Forwarded-For", value: previousFor.isEmpty ? clientAddress : "\(previousFor), \(clientAddress)"
            ))
        headers.append(HTTPHeaderField(name: "X-Forwarded-Proto", value: scheme))
        if let host { headers.append(HTTPHeaderField(name: "X-Forwarded-Host", value: host)) }
        var forwarded = request.headers[canonicalForm: "forwarded"].joined(separator: ", ")
        let element =
            "for=\(forwardedNode(clientAddress))" + (host.map { ";host=\(quoted($0))" } ?? "") + ";proto=\(scheme)"
        forwarded = forwarded.isEmpty ? element : "\(forwarded), \(element)"
        headers.append(HTTPHeaderField(name: "Forwarded", value: forwarded))
        return UpgradeRequest(url: upstream, target: target, subprotocols: subprotocols, headers: headers)
    }

    /// The upstream URL's path, then the client's path (a client asking for `/` adds nothing);
    /// the upstream URL's query, then the client's, joined with `&`.
    static func appendedTarget(upstream: WebSocketURL, clientPath: String, clientQuery: String) -> String {
        let prefix = upstream.path.hasSuffix("/") ? String(upstream.path.dropLast()) : upstream.path
        let path = clientPath == "/" ? (prefix.isEmpty ? "/" : prefix) : prefix + clientPath
        let query = [upstream.query, clientQuery].filter { !$0.isEmpty }.joined(separator: "&")
        return query.isEmpty ? path : "\(path)?\(query)"
    }

    /// A route's: its prefix replaced by the upstream URL's path (route `/feed`, upstream
    /// `…/stream`: `/feed/x` → `/stream/x`, `/feed` → `/stream`), as nginx's `proxy_pass` with a
    /// URI; an upstream URL without a path takes the client's path as it came. For the route
    /// `/` this is `appendedTarget`. Queries as there.
    static func routedTarget(upstream: WebSocketURL, routePath: String, clientPath: Substring, clientQuery: Substring)
        -> String
    {
        let path: String
        if !upstream.hasPath {
            path = String(clientPath)
        } else {
            let prefix = routePath == "/" ? 0 : routePath.utf8.count
            let rest = clientPath.utf8.dropFirst(prefix)
            let base = upstream.path.hasSuffix("/") ? String(upstream.path.dropLast()) : upstream.path
            if rest.isEmpty {
                path = upstream.path
            } else if prefix == 0 && rest.elementsEqual("/".utf8) {
                path = base.isEmpty ? "/" : base  // the route `/` asked for `/`: as `append`
            } else {
                path = base + String(decoding: rest, as: UTF8.self)
            }
        }
        let query = [upstream.query, String(clientQuery)].filter { !$0.isEmpty }.joined(separator: "&")
        return query.isEmpty ? path : "\(path)?\(query)"
    }

    /// RFC 7239 §6: an IPv6 address is bracketed and quoted.
    static func forwardedNode(_ address: String) -> String {
        address.contains(":") ? "\"[\(address)]\"" : address
    }

    static func quoted(_ value: String) -> String {
        let token = value.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
        return token
            ? value
            : "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
    }
}
