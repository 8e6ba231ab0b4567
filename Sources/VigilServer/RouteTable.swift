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
/// A request is taken by the routes that name its `Host` exactly, else by those whose wildcard
/// matches it, else by the routes for any host (nginx's `server_name`, then its `location`); of
/// those, the one with the longest path that takes it (`RouteEntry.takes`). No route: 404.
struct RouteTable: Sendable {
    /// One route with its connections' rules: a class, shared by the table and every handshake
    /// that took it (a connection holds a reference, not a copy of all of it).
    final class Route: Sendable {
        let entry: RouteEntry
        /// The client legs' heartbeat and deadlines (the route's settings over the top-level ones).
        let policy: SupervisionPolicy
        /// A proxied pair's upstream legs'.
        let upstreamPolicy: SupervisionPolicy
        let origins: OriginPolicy
        /// A proxy route's upstream dial rules and pool; `nil` for echo and command.
        let proxy: ProxyRules?

        var name: String { entry.name }

        init(
            entry: RouteEntry, policy: SupervisionPolicy, upstreamPolicy: SupervisionPolicy, origins: OriginPolicy,
            proxy: ProxyRules?
        ) {
            self.entry = entry
            self.policy = policy
            self.upstreamPolicy = upstreamPolicy
            self.origins = origins
            self.proxy = proxy
        }
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
            pool.retire()
        }
    }

    func route(named name: String) -> Route? {
        routes.first { $0.name == name }
    }

    /// The route that takes a request for `path` (bytes of the request target) with `host`
    /// (its `Host` header), if any.
    func route(for path: Substring, host: String?) -> Route? {
        candidates(host: host).best(for: path)
    }

    /// The routes a request with `host` chooses among (the best host match there is).
    private func candidates(host: String?) -> [Route] {
        let matches = routes.compactMap { route in route.entry.serves(host: host).map { (route, $0) } }
        guard let best = matches.map(\.1).min() else { return [] }
        return matches.filter { $0.1 == best }.map(\.0)
    }

    /// The routes as messages name them: `/chat/…, /feed/…, /ws`.
    private static func describe(_ routes: [Route]) -> String {
        routes.map { route in
            route.entry.path + (route.entry.exact ? "" : route.entry.path == "/" ? " (every path)" : "/…")
        }.joined(separator: ", ")
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
        if !route.entry.exact, let segment = Self.dotSegment(in: requestPath) {
            // `/public/../admin` taken by `/public`, its prefix replaced, would leave the upstream
            // URL's path at the backend that resolves it: nginx resolves such paths before it
            // chooses; vigild refuses them.
            return .failure(
                HandshakeRejection(
                    status: .badRequest, reason: .badRequest,
                    message:
                        "the path \(Printable.escaped(requestPath)) has a \(Printable.escaped(segment)) segment; a route takes paths without . and .."
                ))
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

    /// A `.` or `..` segment of `path`, also percent-encoded (`%2e`), if it has one.
    static func dotSegment(in path: Substring) -> Substring? {
        guard path.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "%") }) else { return nil }
        return path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).lazy.map { Substring($0) }
            .first { segment in
                let plain = segment.lowercased().replacingOccurrences(of: "%2e", with: ".")
                return plain == "." || plain == ".."
            }
    }

    /// The 404: it names the routes the request could have taken (for its host), never
    /// another host's.
    func notFound(_ path: Substring, host: String?) -> HandshakeRejection {
        let forHost =
            routes.contains { !$0.entry.hosts.isEmpty }
            ? " for host \(host.map { Printable.escaped($0[...]) } ?? "none")" : ""
        let candidates = candidates(host: host)
        let routesText =
            candidates.isEmpty
            ? "no route serves that host"
            : "the route\(candidates.count == 1 ? " is" : "s are") \(Self.describe(candidates))"
        return HandshakeRejection(
            status: .notFound, reason: .notFound,
            message: "no WebSocket route at \(Printable.escaped(path))\(forHost); \(routesText)")
    }
}

extension [RouteTable.Route] {
    /// The route with the longest path that takes `path`.
    fileprivate func best(for path: Substring) -> RouteTable.Route? {
        var best: RouteTable.Route?
        for route in self where route.entry.takes(path: path) {
            if best.map({ route.entry.path.utf8.count > $0.entry.path.utf8.count }) ?? true { best = route }
        }
        return best
    }
}
