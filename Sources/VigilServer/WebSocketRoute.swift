import NIOHTTP1
import VigilHost
import VigilRegistry
import VigilText

/// The request target of a WebSocket handshake, checked against the configured route.
/// Pure: no NIO channel involved, so every case is a unit test.
struct WebSocketRoute {
    /// `nil`: every path is accepted (proxy mode forwards whatever the client asked for).
    let path: String?

    /// How the route reads in messages.
    var description: String { path ?? "every path" }

    /// Returns the client name (if any) of an acceptable target, or why it is not acceptable.
    ///
    /// A request target is bytes (RFC 3986), so it is split and compared byte by byte, on
    /// `utf8` views: String's own `firstIndex(of:)`, `split` and `==` walk grapheme clusters
    /// and compare canonical equivalents, which made the route a tenth of refusing a request.
    func match(method: HTTPMethod, uri: String) -> Result<String?, HandshakeRejection> {
        let (requestPath, query) = RequestTarget.split(uri)
        guard path.map({ requestPath.utf8.elementsEqual($0.utf8) }) ?? true else {
            return .failure(
                HandshakeRejection(
                    status: .notFound, reason: .notFound,
                    message: "no WebSocket route at \(Printable.escaped(requestPath)); the route is \(description)"))
        }
        guard method == .GET else {
            return .failure(
                HandshakeRejection(
                    status: .methodNotAllowed, reason: .badMethod,
                    message: "a WebSocket handshake must use GET, not \(method.rawValue)",
                    extraHeaders: [("Allow", "GET")]))
        }
        var client: String?
        for (name, value) in RequestTarget.parameters(query) where name == "client" {
            guard let decoded = PercentEncoding.decoded(value), ConnectionIdentity.isValidClientName(decoded) else {
                return .failure(
                    HandshakeRejection(
                        status: .badRequest, reason: .badClientName,
                        message:
                            "client name \"\(Printable.escaped(value))\" must be 1 to \(ConnectionIdentity.maxClientNameLength) printable ASCII characters"
                    ))
            }
            client = decoded
        }
        return .success(client)
    }

}
