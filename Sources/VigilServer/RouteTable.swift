import NIOHTTP1
import VigilConfig
import VigilHost
import VigilProxy
import VigilRegistry
import VigilSupervisor
import VigilText

/// The listener's routes of the moment (a reload replaces the table): which route a handshake
/// takes, and what that route's connections run with. Choosing is pure, so every rule is a
/// unit test.
///
/// A request is taken by the routes for its `Host` when any route names that host, else by the
/// routes for any host (nginx's `server_name`, then its `location`); of those, the one with the
/// longest path that takes it (`RouteEntry.takes`). No route: 404.
struct RouteTable: Sendable {
    /// One route with its connections' rules.
    struct Route: Sendable {
        let entry: RouteEntry
        /// The client legs' heartbeat and deadlines (the route's settings over the top-level ones).
        let policy: SupervisionPolicy
        /// A proxied pair's upstream legs'.
        let upstreamPolicy: SupervisionPolicy
        let origins: OriginPolicy
        /// A proxy route's upstream dial rules and pool; `nil` for echo and command.
        let proxy: ProxyRules?

        var name: String { entry.name }
    }

    let routes: [Route]

    /// The table for `settings.routeTable`. A proxy route keeps the pool it had in `running`
    /// (by name) so that its members' health and pairs carry over; `commit(replacing:)` then
    /// applies the new members to it. Throws when a route's `upstream_ca_file` cannot be used.
    static func make(_ settings: VigilSettings, running: RouteTable?, host: ConnectionHost) throws -> RouteTable {
        let routes = try settings.routeTable.map { entry in
            let own = entry.settings(over: settings)
            let proxy = try (entry.mode == .proxy ? entry : nil).map { entry in
                let pool =
                    running?.route(named: entry.name)?.proxy?.pool
                    ?? UpstreamPool(route: entry, metrics: host.registry.metrics.upstreams, logger: host.logger)
                return try ProxyRules.make(entry, settings: own, pool: pool)
            }
            return Route(
                entry: entry, policy: own.supervisionPolicy, upstreamPolicy: own.upstreamSupervisionPolicy,
                origins: OriginPolicy(settings: own), proxy: proxy)
        }
        return RouteTable(routes: routes)
    }

    /// Makes this table the running one: each pool takes its route's members (series for new
    /// members, none for removed ones); pools of routes that are gone lose their series (their
    /// pairs live on until they end).
    func commit(replacing running: RouteTable?) {
        for route in routes { route.proxy?.pool.reconfigure(route.entry) }
        for old in running?.routes ?? [] {
            guard let pool = old.proxy?.pool, !routes.contains(where: { $0.proxy?.pool === pool }) else { continue }
            pool.removeSeries()
        }
    }

    func route(named name: String) -> Route? {
        routes.first { $0.name == name }
    }

    /// The route that takes a request for `path` (bytes of the request target) with `host`
    /// (its `Host` header), if any.
    func route(for path: Substring, host: String?) -> Route? {
        let named = routes.filter { !$0.entry.hosts.isEmpty && $0.entry.serves(host: host) }
        let candidates = named.isEmpty ? routes.filter { $0.entry.hosts.isEmpty } : named
        var best: Route?
        for route in candidates where route.entry.takes(path: path) {
            if best.map({ route.entry.path.utf8.count > $0.entry.path.utf8.count }) ?? true { best = route }
        }
        return best
    }

    /// What `/routes` shows.
    var reports: [RouteReport] {
        routes.map { route in
            RouteReport(
                name: route.name, path: route.entry.path, hosts: route.entry.hosts, mode: route.entry.mode.rawValue,
                balance: route.proxy == nil ? nil : route.entry.balance.rawValue,
                members: route.proxy?.pool.members.map {
                    RouteReport.Member(
                        name: $0.name, url: $0.url.description, up: $0.up, pairs: $0.pairs, drain: $0.drain)
                } ?? [])
        }
    }

    /// The routes as messages name them: `/chat, /feed (feed.example.com)`.
    var description: String {
        routes.map { route in
            route.entry.path + (route.entry.exact ? "" : route.entry.path == "/" ? " (every path)" : "/…")
                + (route.entry.hosts.isEmpty ? "" : " (\(route.entry.hosts.joined(separator: ",")))")
        }.joined(separator: ", ")
    }

    /// Returns the route and the client name (if any) of an acceptable request, or why it is
    /// not acceptable.
    ///
    /// A request target is bytes (RFC 3986), so it is split and compared byte by byte, on
    /// `utf8` views: String's own `firstIndex(of:)`, `split` and `==` walk grapheme clusters
    /// and compare canonical equivalents, which made the route a tenth of refusing a request.
    func match(method: HTTPMethod, uri: String, host: String?) -> Result<(Route, String?), HandshakeRejection> {
        let (requestPath, query) = RequestTarget.split(uri)
        guard let route = route(for: requestPath, host: host) else {
            return .failure(notFound(requestPath, host: host))
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
        return .success((route, client))
    }

    func notFound(_ path: Substring, host: String?) -> HandshakeRejection {
        let forHost =
            routes.contains { !$0.entry.hosts.isEmpty }
            ? " for host \(host.map { Printable.escaped($0[...]) } ?? "none")" : ""
        return HandshakeRejection(
            status: .notFound, reason: .notFound,
            message:
                "no WebSocket route at \(Printable.escaped(path))\(forHost); the route\(routes.count == 1 ? " is" : "s are") \(description)"
        )
    }
}
