import FoundationEssentials
import NIOHTTP1
import VigilConfig
import VigilConnection
import VigilHost
import VigilRegistry
import VigilSupervisor
import VigilText

/// An HTTP answer of the status API.
struct StatusResponse {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func json(
        _ value: some Encodable, status: HTTPResponseStatus = .ok, contentType: String = "application/json"
    ) -> StatusResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(value)).map { Array($0) + [0x0A] } ?? Array("{}\n".utf8)
        return StatusResponse(status: status, contentType: contentType, body: body)
    }

    static func error(_ status: HTTPResponseStatus, _ message: String) -> StatusResponse {
        json(ErrorJSON(error: message), status: status)
    }

    static func text(_ text: String, status: HTTPResponseStatus = .ok) -> StatusResponse {
        StatusResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// Routes status API requests to registry queries. Pure apart from reading the registry and
/// the snapshots it is given, so every route and every bad parameter is a unit test.
public struct StatusRouter: Sendable {
    let registry: ConnectionRegistry
    let startedAt: MonotonicInstant
    let clock: ConnectionClock
    /// The effective configuration, which a reload may change.
    let configuration: @Sendable () -> ResolvedSettings
    let phase: @Sendable () -> ServerPhase
    /// TCP connections admitted to the WebSocket listener that have not upgraded yet.
    let pendingHandshakes: @Sendable () -> Int
    /// The monitor targets, in configuration order.
    let targets: @Sendable () -> [TargetReport]
    /// The listener's routes, in configuration order.
    let routes: @Sendable () -> [RouteReport]

    public init(
        registry: ConnectionRegistry, startedAt: MonotonicInstant, clock: ConnectionClock,
        configuration: @escaping @Sendable () -> ResolvedSettings, phase: @escaping @Sendable () -> ServerPhase,
        pendingHandshakes: @escaping @Sendable () -> Int = { 0 },
        targets: @escaping @Sendable () -> [TargetReport] = { [] },
        routes: @escaping @Sendable () -> [RouteReport] = { [] }
    ) {
        self.routes = routes
        self.registry = registry
        self.startedAt = startedAt
        self.clock = clock
        self.configuration = configuration
        self.phase = phase
        self.pendingHandshakes = pendingHandshakes
        self.targets = targets
    }

    static let endpoints = [
        "/", "/livez", "/readyz", "/health", "/history", "/connections", "/connections/{id}", "/closes",
        "/closes/stream", "/targets",
        "/targets/{name}", "/routes", "/status", "/metrics",
    ]
    /// `/closes` returns this many records unless `limit=` says otherwise.
    static let defaultCloseLimit = 100
    /// The most records or connections one response holds; `next` pages on. A bound on what
    /// one request costs to encode and buffer.
    static let maxPage = 1000

    func respond(method: HTTPMethod, uri: String) -> StatusResponse {
        let (path, query) = RequestTarget.split(uri)
        guard method == .GET else {
            var response = StatusResponse.error(
                .methodNotAllowed, "method \(method.rawValue) not allowed; the status API is read-only (GET)")
            response.headers = [("Allow", "GET")]
            return response
        }
        let parameters: [String: String]
        do {
            parameters = try Self.parse(query)
        } catch {
            return .error(.badRequest, error.message)
        }
        switch path {
        case "/":
            return acceptOnly([], parameters) ?? StatusPage.response
        case "/history":
            return acceptOnly([], parameters) ?? history()
        case "/livez":
            return acceptOnly([], parameters) ?? .text("ok\n")
        case "/readyz":
            let current = phase()
            return acceptOnly([], parameters)
                ?? .text("\(current.name)\n", status: current == .ready ? .ok : .serviceUnavailable)
        case "/health":
            return acceptOnly([], parameters) ?? health()
        case "/connections":
            return acceptOnly(["after_id", "limit", "route"], parameters) ?? connections(parameters)
        case "/closes":
            return acceptOnly(
                ["kind", "cause", "client", "pair", "leg", "target", "route", "limit", "before_seq"], parameters)
                ?? closes(parameters)
        case "/routes":
            return acceptOnly([], parameters) ?? .json(RouteListJSON(routes: routes().map(RouteJSON.init)))
        case "/targets":
            return acceptOnly([], parameters) ?? .json(TargetListJSON(targets: targets().map(TargetJSON.init)))
        case "/status":
            return acceptOnly([], parameters) ?? status()
        case "/metrics":
            return acceptOnly([], parameters)
                ?? StatusResponse(
                    status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                    body: registry.metrics.exposition())
        default:
            if path.hasPrefix("/connections/") {
                return acceptOnly([], parameters) ?? connection(idText: path.dropFirst("/connections/".count))
            }
            if path.hasPrefix("/targets/") {
                return acceptOnly([], parameters) ?? target(named: path.dropFirst("/targets/".count))
            }
            return .error(
                .notFound,
                "no endpoint \(Printable.escaped(path)); endpoints: " + Self.endpoints.joined(separator: ", "))
        }
    }

    // MARK: - Routes

    private func connections(_ parameters: [String: String]) -> StatusResponse {
        let limit: Int
        let after: UInt64?
        do {
            limit = try Self.pageLimit(parameters, default: Self.maxPage)
            after = try Self.cursor("after_id", parameters, what: "a connection id")
        } catch {
            return .error(.badRequest, error.message)
        }
        let route = parameters["route"]
        if let route, !Self.isRouteName(route) {
            return .error(.badRequest, "route \"\(Printable.escaped(route[...]))\" is not a route name")
        }
        let (count, page) = registry.connections(after: after, limit: limit + 1, route: route)
        let shown = page.prefix(limit)
        let next =
            page.count > limit ? Self.link("/connections", parameters, cursor: ("after_id", shown.last!.id)) : nil
        return .json(ConnectionListJSON(count: count, connections: shown.map(ConnectionJSON.init), next: next))
    }

    private func connection(idText: Substring) -> StatusResponse {
        guard let id = UInt64(idText) else {
            return .error(.badRequest, "connection id \"\(Printable.escaped(idText))\" is not a number")
        }
        guard let snapshot = registry.connection(id: id) else {
            return .error(.notFound, "no open connection with id \(id) (closed connections are in /closes)")
        }
        return .json(ConnectionJSON(snapshot: snapshot))
    }

    private func target(named name: Substring) -> StatusResponse {
        let reports = targets()
        guard let report = reports.first(where: { $0.name == name }) else {
            let names = reports.map(\.name)
            return .error(
                .notFound,
                "no target \(Printable.escaped(name)); targets: "
                    + (names.isEmpty ? "none configured" : names.joined(separator: ", ")))
        }
        return .json(TargetJSON(report: report))
    }

    private func closes(_ parameters: [String: String]) -> StatusResponse {
        let filter: CloseFilter
        switch Self.closeFilter(parameters) {
        case .success(let parsed): filter = parsed
        case .failure(let refusal): return refusal.response
        }
        let limit: Int
        let before: UInt64?
        do {
            limit = try Self.pageLimit(parameters, default: Self.defaultCloseLimit)
            before = try Self.cursor("before_seq", parameters, what: "a close sequence number (seq)")
        } catch {
            return .error(.badRequest, error.message)
        }
        let (matched, records) = registry.closes(matching: filter, before: before, limit: limit + 1)
        let shown = records.prefix(limit)
        let next =
            records.count > limit ? Self.link("/closes", parameters, cursor: ("before_seq", shown.last!.sequence)) : nil
        return .json(CloseListJSON(total: matched, closes: shown.map(CloseJSON.init), next: next))
    }

    /// A refused query, as the answer to send.
    struct Refusal: Error {
        var response: StatusResponse
    }

    /// What a route's name may be (`RouteEntry`).
    static func isRouteName(_ name: String) -> Bool {
        name.utf8.count <= RouteEntry.maxNameLength && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// The filter `/closes/stream?kind=&cause=&client=&pair=&leg=&target=&route=` asks for, or its 4xx.
    func streamFilter(uri: String) -> Result<CloseFilter, Refusal> {
        let parameters: [String: String]
        do {
            parameters = try Self.parse(RequestTarget.split(uri).query)
        } catch {
            return .failure(Refusal(response: .error(.badRequest, error.message)))
        }
        if let refusal = acceptOnly(["kind", "cause", "client", "pair", "leg", "target", "route"], parameters) {
            return .failure(Refusal(response: refusal))
        }
        return Self.closeFilter(parameters)
    }

    /// The record filter of a `/closes` query.
    static func closeFilter(_ parameters: [String: String]) -> Result<CloseFilter, Refusal> {
        func refuse(_ message: String) -> Result<CloseFilter, Refusal> {
            .failure(Refusal(response: .error(.badRequest, message)))
        }
        var filter = CloseFilter()
        if let target = parameters["target"] {
            guard target.count <= MonitorTarget.maxNameLength, target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return refuse("target \"\(Printable.escaped(target[...]))\" is not a target name")
            }
            filter.target = target
        }
        if let route = parameters["route"] {
            guard isRouteName(route) else {
                return refuse("route \"\(Printable.escaped(route[...]))\" is not a route name")
            }
            filter.route = route
        }
        if let text = parameters["kind"] {
            guard let kind = CloseKind(rawValue: text) else {
                return refuse(
                    "unknown kind \"\(Printable.escaped(text[...]))\"; expected one of "
                        + CloseKind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            filter.kind = kind
        }
        if let text = parameters["cause"] {
            guard let cause = CloseCause(rawValue: text) else {
                return refuse(
                    "unknown cause \"\(Printable.escaped(text[...]))\"; expected one of "
                        + CloseCause.allCases.map(\.rawValue).joined(separator: ", "))
            }
            filter.cause = cause
        }
        if let client = parameters["client"] {
            guard ConnectionIdentity.isValidClientName(client) else {
                return refuse(
                    "client \"\(Printable.escaped(client[...]))\" must be 1 to \(ConnectionIdentity.maxClientNameLength) printable ASCII characters"
                )
            }
            filter.client = client
        }
        if let text = parameters["pair"] {
            guard text.count <= 20, let pair = UInt64(text) else {
                return refuse("pair \"\(Printable.escaped(text[...]))\" is not a pair id (a whole number)")
            }
            filter.pairID = pair
        }
        if let text = parameters["leg"] {
            guard let leg = ConnectionLeg(rawValue: text) else {
                return refuse(
                    "unknown leg \"\(Printable.escaped(text[...]))\"; expected one of "
                        + ConnectionLeg.allCases.map(\.rawValue).joined(separator: ", "))
            }
            filter.leg = leg
        }
        return .success(filter)
    }

    /// `limit=`: 1 to `maxPage`.
    private static func pageLimit(_ parameters: [String: String], default value: Int) throws(BadQuery) -> Int {
        guard let text = parameters["limit"] else { return value }
        guard text.count <= 12, let limit = Int(text), (1...maxPage).contains(limit) else {
            throw BadQuery(
                message:
                    "limit \"\(Printable.escaped(text[...]))\" must be a whole number from 1 to \(maxPage) (follow next for more)"
            )
        }
        return limit
    }

    private static func cursor(_ name: String, _ parameters: [String: String], what: String) throws(BadQuery) -> UInt64?
    {
        guard let text = parameters[name] else { return nil }
        guard text.count <= 20, let value = UInt64(text) else {
            throw BadQuery(message: "\(name) \"\(Printable.escaped(text[...]))\" is not \(what)")
        }
        return value
    }

    /// The URL of the next page: the same query with the cursor moved.
    private static func link(_ path: String, _ parameters: [String: String], cursor: (name: String, value: UInt64))
        -> String
    {
        var query = parameters
        query[cursor.name] = String(cursor.value)
        return path + "?"
            + query.sorted { $0.key < $1.key }.map { "\($0.key)=\(PercentEncoding.encoded($0.value))" }.joined(
                separator: "&")
    }

    private func history() -> StatusResponse {
        let (startedAt, minutes) = registry.history(at: clock.now())
        return .json(HistoryJSON(startedAt: startedAt, minutes: minutes))
    }

    private func status() -> StatusResponse {
        let now = clock.now()
        let summary = registry.summary(at: now)
        let effective = configuration()
        let config = Dictionary(
            uniqueKeysWithValues: SettingCatalog.all.map { ($0.key, effective.text(forKey: $0.key) ?? "") })
        return .json(
            StatusJSON(
                state: phase().name, uptime_s: (now - startedAt).components.seconds, connections: registry.activeCount,
                handshakes_pending: pendingHandshakes(),
                closes: Dictionary(
                    uniqueKeysWithValues: CloseKind.allCases.map { ($0.rawValue, summary.byKind[$0] ?? 0) }),
                causes: Dictionary(
                    uniqueKeysWithValues: CloseCause.allCases.map { ($0.rawValue, summary.byCause[$0] ?? 0) }),
                closes_total: summary.total,
                closes_last_minute: Dictionary(
                    uniqueKeysWithValues: summary.lastMinuteByKind.map { ($0.key.rawValue, $0.value) }),
                config: config))
    }

    /// pass/warn/fail from three checks: the listener is serving; connections are below 90 % of
    /// `max_connections` (warn) and below 100 % (fail: new clients are refused); abnormal closes
    /// in the last minute are under half of all closes there, or fewer than 10 (else warn).
    private func health() -> StatusResponse {
        let current = phase()
        let active = registry.activeCount
        let maximum = configuration().settings.maxConnections
        let lastMinute = registry.summary(at: clock.now()).lastMinuteByKind
        let abnormal = Int(lastMinute[.abnormal] ?? 0)
        let allRecent = Int(lastMinute.values.reduce(0, +))

        let listener = HealthJSON.Check(
            status: current == .ready ? .pass : .fail, observedValue: .text(current.name), observedUnit: nil,
            output: current == .ready ? nil : "the WebSocket listener is \(current.name)")
        let capacityStatus: HealthJSON.Status = active >= maximum ? .fail : active * 10 >= maximum * 9 ? .warn : .pass
        let capacity = HealthJSON.Check(
            status: capacityStatus, observedValue: .number(active), observedUnit: "connections",
            output: capacityStatus == .pass ? nil : "\(active) of \(maximum) connections in use")
        let abnormalStatus: HealthJSON.Status = abnormal >= 10 && abnormal * 2 > allRecent ? .warn : .pass
        let drops = HealthJSON.Check(
            status: abnormalStatus, observedValue: .number(abnormal), observedUnit: "closes",
            output: abnormalStatus == .pass
                ? nil : "\(abnormal) of \(allRecent) closes in the last minute were abnormal")
        var checks = [
            "websocket:listener": [listener], "connections:active": [capacity], "closes:abnormal_last_minute": [drops],
        ]
        let monitors = targets()
        if !monitors.isEmpty {
            let down = monitors.filter { !$0.isUp }
            let status: HealthJSON.Status = down.contains { $0.critical } ? .fail : down.isEmpty ? .pass : .warn
            checks["targets:up"] = [
                HealthJSON.Check(
                    status: status, observedValue: .number(monitors.count - down.count), observedUnit: "targets",
                    output: down.isEmpty
                        ? nil
                        : "not up: "
                            + down.map { "\($0.name)\($0.critical ? " (critical)" : "")" }.joined(separator: ", "))
            ]
        }
        let overall = checks.values.flatMap { $0.map(\.status) }.max()!
        return .json(
            HealthJSON(status: overall, checks: checks),
            status: overall == .fail ? .serviceUnavailable : .ok, contentType: "application/health+json")
    }

    // MARK: - Query parameters

    private func acceptOnly(_ allowed: Set<String>, _ parameters: [String: String]) -> StatusResponse? {
        guard let unknown = parameters.keys.sorted().first(where: { !allowed.contains($0) }) else { return nil }
        let accepted =
            allowed.isEmpty
            ? "this endpoint takes no parameters" : "accepted: " + allowed.sorted().joined(separator: ", ")
        return .error(.badRequest, "unknown query parameter \"\(Printable.escaped(unknown[...]))\"; \(accepted)")
    }

    struct BadQuery: Error {
        var message: String
    }

    static func parse(_ query: Substring) throws(BadQuery) -> [String: String] {
        var parameters: [String: String] = [:]
        for (rawName, rawValue) in RequestTarget.parameters(query) {
            guard let name = PercentEncoding.decoded(rawName), let value = PercentEncoding.decoded(rawValue) else {
                throw BadQuery(message: "malformed percent-encoding in query \"\(Printable.escaped(query))\"")
            }
            guard parameters[name] == nil else {
                throw BadQuery(message: "query parameter \"\(Printable.escaped(name[...]))\" given twice")
            }
            parameters[name] = value
        }
        return parameters
    }
}
