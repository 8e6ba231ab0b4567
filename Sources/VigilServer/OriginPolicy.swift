import NIOHTTP1
import VigilConfig
import VigilHost
import VigilText

/// Which pages may open a WebSocket to vigild (cross-site WebSocket hijacking: a page on any site,
/// open in a browser that can reach the listener, would otherwise connect with the browser's
/// credentials, fill `max_connections`, claim any `?client=` name and write close reasons of its
/// choice into the log). Pure, so every rule is a unit test.
///
/// - `allowed_origins` unset: same origin only, as gorilla/websocket does by default: the
///   `Origin`'s host and port must be the `Host` header's (how both are read: `Origin`).
/// - Otherwise the `Origin` must match one entry: an exact origin (`https://app.example.com`,
///   default ports implied), a wildcard (`https://*.example.com`: any subdomain, not the apex),
///   or `*` (any origin).
/// - A request without `Origin` (not a browser) is admitted unless `require_origin` is set.
struct OriginPolicy: Sendable {
    let allowed: [OriginPattern]?
    let requireOrigin: Bool

    init(settings: VigilSettings) {
        self.allowed = settings.allowedOrigins
        self.requireOrigin = settings.requireOrigin
    }

    /// `nil` when the request may go on, else why not (403).
    func check(_ headers: HTTPHeaders) -> HandshakeRejection? {
        // Lines as sent (a list is not an origin either way); an empty one counts as none, as
        // it did when the header was read comma-split.
        let origins = headers["origin"].filter { !$0.isEmpty }
        guard let text = origins.first else {
            guard requireOrigin else { return nil }
            return refusal("a request without Origin, and require_origin is set")
        }
        // `*` admits every page, those with an opaque origin ("null": sandboxed, file://) too.
        if let allowed, allowed.contains(.any) { return nil }
        guard origins.count == 1, let origin = Origin(String(text)) else {
            return refusal(
                "origin \"\(Printable.escaped(origins.joined(separator: ", ")[...]))\" is not an origin vigild can check "
                    + "(\"null\" is a sandboxed page or a file; userinfo, a query, a fragment or a scheme other than http(s) "
                    + "make a URL opaque too); only allowed_origins: \"*\" admits it")
        }
        // Named as sent (a path and all), so the operator finds the value the client wrote.
        let sent = Printable.escaped(text[...])
        if let allowed {
            if allowed.contains(where: { $0.matches(origin) }) { return nil }
            return refusal(
                "origin \(sent) is not in allowed_origins (\(allowed.map(\.description).joined(separator: ", ")))")
        }
        guard let host = headers.first(name: "host"), origin.isSameOrigin(asHost: host) else {
            let host = headers.first(name: "host").map { Printable.escaped($0[...]) } ?? "none"
            return refusal("origin \(sent) is not the same origin as Host \(host); set allowed_origins to admit it")
        }
        return nil
    }

    private func refusal(_ message: String) -> HandshakeRejection {
        HandshakeRejection(status: .forbidden, reason: .origin, message: message)
    }
}
