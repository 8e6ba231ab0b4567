import VigilText
import Yams

/// One route of the WebSocket listener: which requests it takes (a path prefix, maybe a host)
/// and what it does with them (echo, command, or proxy to a pool of upstreams). An entry of the
/// config file's `routes:` list; without one, the settings `path`, `mode` and `upstream` make
/// the single route (`VigilSettings.routeTable`).
public struct RouteEntry: Sendable, Hashable {
    /// A label and a journal field: the route's own `name`, or its path.
    public var name: String
    /// Starts with `/`, no trailing `/` but for `/` itself.
    public var path: String
    /// The request's path must be `path` itself (the single route of echo and command modes),
    /// not only begin with it at a `/` boundary.
    public var exact: Bool
    /// Host-name patterns (`ServerNamePattern`) the request's `Host` must match; empty: any.
    public var hosts: [String]
    public var mode: ServerMode
    /// A proxy route's upstreams, in the configured order; empty for echo and command.
    public var pool: [PoolMember]
    public var balance: BalancePolicy
    /// How the request sent upstream is built from the client's.
    public var target: UpstreamTarget
    /// Settings of the catalog this route sets for itself, as written: applied over the
    /// top-level ones (`settings(over:)`).
    public var overrides: [String: String]

    public init(
        name: String, path: String, exact: Bool = false, hosts: [String] = [], mode: ServerMode,
        pool: [PoolMember] = [], balance: BalancePolicy = .roundRobin, target: UpstreamTarget = .replacingPrefix,
        overrides: [String: String] = [:]
    ) {
        self.name = name
        self.path = path
        self.exact = exact
        self.hosts = hosts
        self.mode = mode
        self.pool = pool
        self.balance = balance
        self.target = target
        self.overrides = overrides
    }

    /// The settings this route's connections run with: the top-level ones, then its own.
    /// The overrides parsed when the file was read, so they parse here too.
    public func settings(over global: VigilSettings) -> VigilSettings {
        var settings = global
        settings.mode = mode
        for (key, text) in overrides {
            try? SettingCatalog.definition(forKey: key)?.apply(&settings, text)
        }
        return settings
    }

    /// Whether this route takes a request for `requestPath` (bytes, as the request target
    /// carries them): the path itself, or below it at a `/` boundary (`/chat` takes
    /// `/chat/x`, not `/chatroom`).
    public func takes(path requestPath: Substring) -> Bool {
        let own = path.utf8
        let asked = requestPath.utf8
        if exact { return asked.elementsEqual(own) }
        if own.count == 1 { return true }  // `/`
        guard asked.starts(with: own) else { return false }
        return asked.count == own.count
            || asked[asked.index(asked.startIndex, offsetBy: own.count)] == UInt8(ascii: "/")
    }

    /// How well this route is for the request's `Host` (`nil`: the request named none): by an
    /// exact name, by a wildcard, for any host (no `host`), or not at all (`nil`). As nginx's
    /// `server_name`, an exact name before a wildcard before the default.
    public func serves(host: String?) -> HostMatch? {
        guard !hosts.isEmpty else { return .anyHost }
        guard let host else { return nil }
        let name = ServerNamePattern.normalised(Self.hostName(of: host))
        if hosts.contains(name) { return .exact }
        return hosts.contains { $0.hasPrefix("*.") && ServerNamePattern.matches($0, name) } ? .wildcard : nil
    }

    /// How a route's `host` takes a request: the better first.
    public enum HostMatch: Int, Comparable, Sendable {
        case exact, wildcard, anyHost

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// `Host`'s name without its port; an IPv6 literal keeps its brackets.
    static func hostName(of host: String) -> String {
        if host.hasPrefix("[") { return String(host.prefix { $0 != "]" }) + "]" }
        return String(host.prefix { $0 != ":" })
    }

    // MARK: - Parsing

    /// The config file key of the list.
    public static let configKey = "routes"
    static let ownKeys = ["name", "path", "host", "mode", "upstream", "balance"]
    static let memberKeys = ["url", "name", "drain"]
    public static let maxNameLength = 64

    /// The settings a route may set for itself, in the catalog's order.
    public static var overridableKeys: [String] { SettingCatalog.all.filter(\.perRoute).map(\.key) }

    /// The `routes:` list: names unique, and no two routes for the same host and path.
    static func parseList(_ node: Node, path file: String) throws(ConfigurationError) -> [RouteEntry] {
        guard let items = node.sequence else {
            throw ConfigurationError(
                "routes in config file \(file) must be a list of routes (- path: /chat, upstream: ws://…)")
        }
        guard !items.isEmpty else {
            throw ConfigurationError(
                "routes in config file \(file) is an empty list: leave it out for the single route of mode and path")
        }
        var routes: [RouteEntry] = []
        for (index, item) in items.enumerated() {
            let route = try parse(item, where: "routes[\(index)] in config file \(file)")
            if let earlier = routes.firstIndex(where: { $0.name == route.name }) {
                throw ConfigurationError(
                    "routes[\(index)] in config file \(file): name \(route.name) is also routes[\(earlier)]'s; names must be unique (a route's name defaults to its path)"
                )
            }
            // Same path, and a host both name (or neither names one): which would take the request?
            if let earlier = routes.firstIndex(where: {
                $0.path == route.path
                    && ($0.hosts.isEmpty && route.hosts.isEmpty || !Set($0.hosts).isDisjoint(with: route.hosts))
            }) {
                let shared = Set(routes[earlier].hosts).intersection(route.hosts).sorted()
                throw ConfigurationError(
                    "routes[\(index)] in config file \(file): path \(route.path)\(shared.isEmpty ? "" : " for host \(shared.joined(separator: ","))") is also routes[\(earlier)]'s; each request must have one route"
                )
            }
            routes.append(route)
        }
        return routes
    }

    static func parse(_ node: Node, where place: String) throws(ConfigurationError) -> RouteEntry {
        let fields = try ConfigFile.fields(of: node, in: place, shape: "path: …, upstream: … or mode: …")
        let overridable = overridableKeys
        if let unknown = fields.keys.sorted().first(where: { !ownKeys.contains($0) && !overridable.contains($0) }) {
            let hint =
                unknown == "upstream_path"
                ? " (a route replaces its path prefix by the upstream URL's path; upstream_path is for the single upstream setting)"
                : ""
            throw ConfigurationError(
                "\(place): unknown key \(unknown)\(hint); keys: " + (ownKeys + overridable).joined(separator: ", "))
        }
        func scalar(_ key: String) throws(ConfigurationError) -> String? {
            guard let node = fields[key] else { return nil }
            guard let text = node.scalar?.string, !text.isEmpty else {
                throw ConfigurationError("\(place): \(key) must have a single value")
            }
            return text
        }
        guard let pathText = try scalar("path") else {
            throw ConfigurationError("\(place) needs a path (a URL path prefix such as /chat, or / for every path)")
        }
        guard var path = try? ValueParsers.path(pathText) else {
            throw ConfigurationError(
                "\(place): invalid value \"\(Printable.escaped(pathText, limit: 100))\" for path: expected an absolute URL path such as /chat (printable ASCII, no ? or #)"
            )
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let name = try scalar("name") ?? path
        guard isName(name) else {
            throw ConfigurationError(
                "\(place): name \"\(Printable.escaped(name, limit: 100))\" must be 1 to \(maxNameLength) of letters, digits, _ - . and / (it is a label and a journal field)"
            )
        }
        let here = "route \(name) (\(place))"
        var hosts: [String] = []
        if let node = fields["host"] {
            let texts = node.scalar.map { [$0.string] } ?? node.sequence?.compactMap { $0.scalar?.string } ?? []
            guard !texts.isEmpty, texts.count == (node.sequence?.count ?? 1) else {
                throw ConfigurationError("\(here): host must be a host name or a list of them")
            }
            for text in texts {
                guard let pattern = ServerNamePattern.parse(text) else {
                    throw ConfigurationError(
                        "\(here): \"\(Printable.escaped(text, limit: 100))\" in host is not a host name such as app.example.com or *.example.com"
                    )
                }
                if !hosts.contains(pattern) { hosts.append(pattern) }
            }
        }
        let pool =
            try fields["upstream"].map { node throws(ConfigurationError) in
                try members(node, route: name, in: here)
            } ?? []
        let mode: ServerMode
        if let text = try scalar("mode") {
            guard let parsed = ServerMode(rawValue: text) else {
                throw ConfigurationError(
                    "\(here): invalid value \"\(Printable.escaped(text, limit: 100))\" for mode: expected proxy, echo or command"
                )
            }
            mode = parsed
        } else if !pool.isEmpty {
            mode = .proxy
        } else {
            throw ConfigurationError("\(here) needs upstream (a proxy route) or mode: echo or command")
        }
        if mode == .proxy && pool.isEmpty {
            throw ConfigurationError("\(here): a proxy route needs upstream (a ws:// or wss:// URL, or a list of them)")
        }
        if mode != .proxy && !pool.isEmpty {
            throw ConfigurationError("\(here): upstream is for a proxy route, and mode is \(mode.rawValue)")
        }
        var balance = BalancePolicy.roundRobin
        if let text = try scalar("balance") {
            guard let parsed = BalancePolicy(rawValue: text) else {
                throw ConfigurationError(
                    "\(here): invalid value \"\(Printable.escaped(text, limit: 100))\" for balance: expected "
                        + BalancePolicy.allCases.map(\.rawValue).joined(separator: " or "))
            }
            balance = parsed
        }
        var overrides: [String: String] = [:]
        for key in overridable {
            guard let node = fields[key], let definition = SettingCatalog.definition(forKey: key) else { continue }
            if mode != .proxy && key.hasPrefix("upstream_") {
                throw ConfigurationError("\(here): \(key) is for a proxy route, and mode is \(mode.rawValue)")
            }
            let text: String
            if let scalar = node.scalar?.string, !scalar.isEmpty {
                text = scalar
            } else if definition.list, let items = node.sequence,
                case let strings = items.compactMap({ $0.scalar?.string }), strings.count == items.count,
                !strings.isEmpty, !strings.contains(where: { $0.isEmpty || $0.contains(",") })
            {
                text = strings.joined(separator: ",")
            } else {
                throw ConfigurationError("\(here): \(key) must have a single value")
            }
            var scratch = VigilSettings()
            do {
                try definition.apply(&scratch, text)
            } catch {
                throw ConfigurationError(
                    "\(here): invalid value \"\(Printable.escaped(text, limit: 100))\" for \(key): expected \(error.expected)"
                )
            }
            overrides[key] = text
        }
        return RouteEntry(
            name: name, path: path, hosts: hosts, mode: mode, pool: pool, balance: balance, overrides: overrides)
    }

    /// `upstream:` as one URL, a list of URLs, or a list of `{url, name, drain}`.
    private static func members(_ node: Node, route: String, in here: String) throws(ConfigurationError)
        -> [PoolMember]
    {
        let items = node.sequence.map(Array.init) ?? [node]
        guard !items.isEmpty else { throw ConfigurationError("\(here): upstream is an empty list") }
        var members: [PoolMember] = []
        for (index, item) in items.enumerated() {
            let place = "\(here), upstream[\(index)]"
            var fields: [String: String] = [:]
            if let text = item.scalar?.string {
                fields["url"] = text
            } else if let mapping = item.mapping {
                for (keyNode, valueNode) in mapping {
                    guard let key = keyNode.scalar?.string, memberKeys.contains(key) else {
                        throw ConfigurationError(
                            "\(place): unknown key \(keyNode.scalar?.string ?? "?"); keys: "
                                + memberKeys.joined(separator: ", "))
                    }
                    guard let value = valueNode.scalar?.string, !value.isEmpty else {
                        throw ConfigurationError("\(place): \(key) must have a single value")
                    }
                    fields[key] = value
                }
            } else {
                throw ConfigurationError("\(place) must be a URL or a mapping (url: …, name: …, drain: …)")
            }
            guard let urlText = fields["url"] else { throw ConfigurationError("\(place) needs a url") }
            guard let url = WebSocketURL(urlText) else {
                throw ConfigurationError(
                    "\(place): invalid value \"\(Printable.escaped(urlText, limit: 100))\" for url: expected a ws:// or wss:// URL"
                )
            }
            let name = fields["name"] ?? "\(route)-\(index + 1)"
            guard isName(name) else {
                throw ConfigurationError(
                    "\(place): name \"\(Printable.escaped(name, limit: 100))\" must be 1 to \(maxNameLength) of letters, digits, _ - . and /"
                )
            }
            guard !members.contains(where: { $0.name == name }) else {
                throw ConfigurationError(
                    "\(place): name \(name) appears twice in the pool; member names must be unique")
            }
            var drain = false
            if let text = fields["drain"] {
                guard let value = try? ValueParsers.boolean(text) else {
                    throw ConfigurationError(
                        "\(place): invalid value \"\(Printable.escaped(text, limit: 100))\" for drain: expected true or false"
                    )
                }
                drain = value
            }
            members.append(PoolMember(name: name, url: url, drain: drain))
        }
        return members
    }

    static func isName(_ name: String) -> Bool {
        (1...maxNameLength).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "_-./".utf8.contains(byte)
            }
    }
}

/// One upstream of a proxy route's pool.
public struct PoolMember: Sendable, Hashable {
    /// A label: the configured `name`, or `<route>-<n>`.
    public var name: String
    public var url: WebSocketURL
    /// Takes no new pairs; a reload closes its live pairs' clients with 1001 over `drain_window`.
    public var drain: Bool

    public init(name: String, url: WebSocketURL, drain: Bool = false) {
        self.name = name
        self.url = url
        self.drain = drain
    }
}

/// How a pool picks the member for a new pair.
public enum BalancePolicy: String, Sendable, Hashable, CaseIterable {
    /// Each member in turn.
    case roundRobin = "round_robin"
    /// The member with the fewest live pairs (in turn among equals).
    case leastConnections = "least_connections"
}

/// How the request target sent upstream is built from the client's.
public enum UpstreamTarget: Sendable, Hashable {
    /// `upstream_path: append`: the upstream URL's path, then the client's whole path.
    case append
    /// `upstream_path: fixed`: the upstream URL's path and query only.
    case fixed
    /// A route's: its prefix replaced by the upstream URL's path (nginx's `proxy_pass` with a
    /// URI); an upstream URL written without a path takes the client's path as it came.
    case replacingPrefix
}
