import ArgumentParser
import FoundationEssentials
import VigilSupervisor
import VigilText

/// `vigilctl status`: state, uptime, connections, closes by kind (last minute and in all).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "State, uptime, connections and closes by kind.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reporting {
            let client = try global.client()
            let status = try await client.document("/status")
            if global.output == .json { return emit(status.rendered()) }
            let palette = global.palette
            let kinds = ["normal", "going_away", "eof", "abnormal", "error"]
            func byKind(_ counts: JSONValue) -> String {
                let parts = kinds.compactMap { kind -> String? in
                    guard let count = counts[kind].number, count > 0 else { return nil }
                    return "\(Int(count)) \(palette.word(kind))"
                }
                return parts.isEmpty ? "none" : parts.joined(separator: ", ")
            }
            var rows = [
                ("state", palette.word(status["state"].string ?? "?")),
                ("uptime", Format.duration(seconds: status["uptime_s"].number ?? 0)),
                ("endpoint", "\(client.endpoint)"),
                (
                    "connections",
                    "\(status["connections"].string ?? "?") open, \(status["handshakes_pending"].string ?? "0") handshakes pending"
                ),
                ("last minute", byKind(status["closes_last_minute"])),
                ("closes", "\(status["closes_total"].string ?? "0") in all: \(byKind(status["closes"]))"),
            ]
            let targets = try await client.document("/targets")["targets"].array
            if !targets.isEmpty {
                let up = targets.filter { $0["state"].string == "up" }.count
                rows.append(("targets", "\(up) of \(targets.count) up"))
            }
            let width = rows.map(\.0.count).max() ?? 0
            for (name, value) in rows {
                emit(name + String(repeating: " ", count: width - name.count) + "  " + value)
            }
        }
    }
}

/// `vigilctl connections`: the live connections as a table.
struct Connections: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The open connections: id, peer, client, age, idle, RTT, messages.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Sort by id, age, idle, rtt, messages, client or peer.", completion: .list(Self.sortKeys)) var sort =
        "id"
    @Option(help: "Only connections whose field has this value (client=kiosk-3, leg=target, target=feed); repeatable.")
    var filter: [String] = []
    @Option(help: "Only connections of this route (both legs of its pairs).") var route: String?

    static let sortKeys = ["id", "age", "idle", "rtt", "messages", "client", "peer"]

    func validate() throws {
        guard Self.sortKeys.contains(sort) else {
            throw ValidationError("--sort \(sort): expected one of " + Self.sortKeys.joined(separator: ", "))
        }
        for item in filter where item.keyValue == nil {
            throw ValidationError("--filter \(item): expected key=value")
        }
    }

    func run() async throws {
        try await reporting {
            let client = try global.client()
            let (first, all) = try await client.pages("/connections" + query([("route", route)]), key: "connections")
            let filters = filter.compactMap(\.keyValue)
            var connections = all.filter { connection in
                filters.allSatisfy { connection[$0.key].string ?? "null" == $0.value }
            }
            connections.sort(by: ordering)
            if global.output == .json {
                return emit(JSONValue.object(["count": first["count"], "connections": .array(connections)]).rendered())
            }
            var table = Table(headers: ["ID", "PEER", "CLIENT", "AGE", "IDLE", "RTT", "IN", "OUT"])
            if global.output == .wide {
                table.headers += [
                    "LEG", "TARGET", "ROUTE", "MEMBER", "PATH", "PINGS", "PONGS", "APP RTT", "BYTES IN", "BYTES OUT",
                ]
            }
            for c in connections {
                var row = [
                    c["id"].string ?? "?", c["peer"].string ?? "?",
                    c["client"].string ?? c["target"].string.map { "target=\($0)" } ?? "-", Format.age(c["opened_at"]),
                    Format.age(c["last_seen_at"]), Format.milliseconds(c["rtt_ms"]), c["messages_in"].string ?? "0",
                    c["messages_out"].string ?? "0",
                ]
                if global.output == .wide {
                    row += [
                        c["leg"].string ?? "-", c["target"].string ?? "-", c["route"].string ?? "-",
                        c["member"].string ?? "-", c["path"].string ?? "-",
                        c["pings_sent"].string ?? "0",
                        c["pongs_received"].string ?? "0", Format.milliseconds(c["app_rtt_ms"]),
                        c["bytes_in"].string ?? "0",
                        c["bytes_out"].string ?? "0",
                    ]
                }
                table.rows.append(row)
            }
            if !table.rows.isEmpty || !global.noHeaders {
                emit(table.render(headers: !global.noHeaders, palette: global.palette))
            }
        }
    }

    private func ordering(_ a: JSONValue, _ b: JSONValue) -> Bool {
        func number(_ value: JSONValue, _ key: String) -> Double { value[key].number ?? -1 }
        switch sort {
        case "age": return (a["opened_at"].string ?? "") < (b["opened_at"].string ?? "")  // oldest first
        case "idle": return (a["last_seen_at"].string ?? "") < (b["last_seen_at"].string ?? "")
        case "rtt": return number(a, "rtt_ms") > number(b, "rtt_ms")  // slowest first
        case "messages":
            return number(a, "messages_in") + number(a, "messages_out") > number(b, "messages_in")
                + number(b, "messages_out")
        case "client", "peer": return (a[sort].string ?? "") < (b[sort].string ?? "")
        default: return number(a, "id") < number(b, "id")
        }
    }
}

/// `vigilctl closes`: the most recent close records, oldest first as a log reads; `--follow`
/// prints new ones as they come.
struct Closes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The most recent closes, oldest first as a log reads (-o json: the API's answer, newest first); --follow prints new ones as they happen."
    )
    @OptionGroup var global: GlobalOptions
    @Option(
        help: "Only this kind (normal, going_away, abnormal, eof, error).",
        completion: .list(CloseKind.allCases.map(\.rawValue)))
    var kind: String?
    @Option(help: "Only this cause (pong_timeout, eof, …).", completion: .list(CloseCause.allCases.map(\.rawValue)))
    var cause: String?
    @Option(help: "Only this client name.") var client: String?
    @Option(help: "Only this monitor target.") var target: String?
    @Option(help: "Only this route's connections.") var route: String?
    @Option(help: "Only this leg (client, upstream, target).", completion: .list(["client", "upstream", "target"]))
    var leg: String?
    @Option(help: "How many (1 to 1000).") var limit = 20
    @Flag(help: "After the recent ones, print each new close as it happens (until interrupted).") var follow = false

    var filters: [(String, String?)] {
        [("kind", kind), ("cause", cause), ("client", client), ("target", target), ("leg", leg), ("route", route)]
    }

    func run() async throws {
        try await reporting {
            let api = try global.client()
            let recent = try await api.document("/closes" + query(filters + [("limit", String(limit))]))
            let records = recent["closes"].array
            if global.output == .json && !follow { return emit(recent.rendered()) }
            let palette = global.palette
            var table = Table(headers: headers)
            table.rows = records.reversed().map(row)  // oldest first, as a log reads
            if global.output == .json {
                for record in records.reversed() { emit(Self.line(record)) }
            } else if !table.rows.isEmpty || !global.noHeaders {
                emit(table.render(headers: !global.noHeaders, palette: palette))
            }
            // Followed rows keep the columns of the table above (at least a timestamp wide).
            let widths = table.widths
            guard follow else { return }
            let output = global.output
            let wide = output == .wide
            let status = try await api.stream("/closes/stream" + query(filters)) { line in
                guard let record = try? JSONValue.parse(Array(line.utf8)) else { return }
                if let error = record["error"].string {
                    FileHandleStandardError.write("vigilctl: \(error)\n")
                    return
                }
                if output == .json {
                    emit(Self.line(record))
                } else {
                    emit(Table.line(Self.cells(record, wide: wide, palette: palette), widths: widths))
                }
            }
            if status != 200 { throw Failure(message: "vigild answered \(status) for /closes/stream", exitCode: 1) }
            throw Failure(message: "vigild ended the stream", exitCode: 1)
        }
    }

    var headers: [String] {
        ["CLOSED", "ID", "KIND", "CAUSE", "CODE", "BY", "WHO", "AFTER"]
            + (global.output == .wide ? ["PEER", "CLEAN", "LEG", "REASON"] : [])
    }

    func row(_ record: JSONValue) -> [String] {
        Self.cells(record, wide: global.output == .wide, palette: global.palette)
    }

    static func cells(_ r: JSONValue, wide: Bool, palette: Palette) -> [String] {
        let closed = r["closed_at"].string.map { String($0.dropFirst(11).prefix(12)) } ?? "?"
        let who = r["target"].string.map { "target=\($0)" } ?? r["client"].string.map { "client=\($0)" } ?? "-"
        var cells = [
            closed, r["id"].string ?? "?", palette.word(r["kind"].string ?? "?"), r["cause"].string ?? "?",
            r["code"].string ?? "?",
            r["initiator"].string ?? "?", who, Format.duration(seconds: (r["duration_ms"].number ?? 0) / 1000),
        ]
        if wide {
            let reason = r["reason"].string ?? ""
            cells += [
                r["peer"].string ?? "?", r["clean"].string ?? "?", r["leg"].string ?? "?",
                reason.isEmpty ? "-" : reason,
            ]
        }
        return cells
    }

    static func line(_ record: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

/// `vigilctl routes`: the listener's routes and, for proxy routes, each pool member's health and pairs.
struct Routes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The WebSocket listener's routes: path, host, mode, and each upstream's state and pairs.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reporting {
            let document = try await global.client().document("/routes")
            if global.output == .json { return emit(document.rendered()) }
            let palette = global.palette
            var table = Table(headers: ["ROUTE", "PATH", "HOST", "MODE", "UPSTREAM", "STATE", "PAIRS"])
            if global.output == .wide { table.headers += ["URL", "BALANCE"] }
            for r in document["routes"].array {
                let hosts = r["host"].array.compactMap(\.string).joined(separator: ",")
                let head = [
                    r["name"].string ?? "?", r["path"].string ?? "?", hosts.isEmpty ? "*" : hosts,
                    r["mode"].string ?? "?",
                ]
                let members = r["members"].array
                if members.isEmpty {
                    table.rows.append(head + ["-", "-", "-"] + (global.output == .wide ? ["-", "-"] : []))
                }
                for m in members {
                    let state = m["drain"] == .bool(true) ? "draining" : m["up"] == .bool(true) ? "up" : "down"
                    var row = head + [m["name"].string ?? "?", palette.word(state), m["pairs"].string ?? "0"]
                    if global.output == .wide { row += [m["url"].string ?? "?", r["balance"].string ?? "-"] }
                    table.rows.append(row)
                }
            }
            if !table.rows.isEmpty || !global.noHeaders {
                emit(table.render(headers: !global.noHeaders, palette: palette))
            }
        }
    }
}

/// `vigilctl targets`: the monitor targets; `vigilctl targets is-up NAME` for scripts.
struct Targets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The monitor targets: state, RTT, reply time, failures, uptime.",
        subcommands: [List.self, IsUp.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "The monitor targets as a table.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await reporting {
                let document = try await global.client().document("/targets")
                if global.output == .json { return emit(document.rendered()) }
                let palette = global.palette
                var table = Table(headers: [
                    "NAME", "STATE", "SINCE", "RTT", "REPLY", "FAILURES", "RECONNECTS", "UPTIME 1H", "NEXT",
                ])
                if global.output == .wide { table.headers += ["URL", "LAST CLOSE", "LAST ERROR"] }
                for t in document["targets"].array {
                    let next =
                        t["next_attempt_at"].string.flatMap(Format.epochSeconds).map {
                            "in " + Format.duration(seconds: max(0, $0 - Format.now()))
                                + " (\(t["next_attempt_rule"].string ?? "?"))"
                        } ?? "-"
                    let uptime = (t["uptime_ratio_1h"].number ?? 0) * 100
                    var row = [
                        t["name"].string ?? "?", palette.word(t["state"].string ?? "?"), Format.age(t["since"]),
                        Format.milliseconds(t["connection"]["rtt_ms"]), Format.milliseconds(t["reply_ms"]),
                        t["consecutive_failures"].string ?? "0", t["reconnects"].string ?? "0",
                        Format.format2(uptime) + "%", next,
                    ]
                    if global.output == .wide {
                        let close = t["last_close"]
                        row += [
                            t["url"].string ?? "?",
                            close.isNull ? "-" : "\(close["kind"].string ?? "?")/\(close["cause"].string ?? "?")",
                            t["last_dial_error"]["error"].string ?? "-",
                        ]
                    }
                    table.rows.append(row)
                }
                if !table.rows.isEmpty || !global.noHeaders {
                    emit(table.render(headers: !global.noHeaders, palette: palette))
                }
            }
        }
    }

    struct IsUp: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "is-up",
            abstract: "Exit 0 if the target is up, else 3 (down, no such target, or vigild cannot be reached).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The target's name.") var name: String

        /// Like `systemctl is-active`: 0 means up, and anything else is 3, with why on stderr
        /// (a script's `until vigilctl targets is-up NAME` keeps waiting either way).
        func run() async throws {
            let state: String
            do {
                let (status, body) = try await global.client().get("/targets/" + PercentEncoding.encoded(name))
                let document = try? JSONValue.parse(body)
                guard status == 200, let document else {
                    let message = document?["error"].string ?? "vigild answered \(status)"
                    throw Failure(message: "\(name): \(message)", exitCode: 3)
                }
                state = document["state"].string ?? "?"
            } catch {
                FileHandleStandardError.write("vigilctl: \(error)\n")
                throw ExitCode(3)
            }
            emit(state)
            if state != "up" { throw ExitCode(3) }
        }
    }
}

/// `vigilctl health`: the `/health` checks; the exit status says pass (0), warn (1), fail (2).
struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The health checks; exits 0 pass, 1 warn, 2 fail, 3 unknown.")
    @OptionGroup var global: GlobalOptions

    /// The status says only the health: 1 and 2 are warn and fail, never an error of vigilctl's
    /// or the API's; whatever keeps vigilctl from reading the health (unreachable, refused,
    /// no configuration) is 3, "unknown", with why on stderr.
    func run() async throws {
        var overall = "?"
        try await reporting(exitCode: 3) {
            let document = try await global.client().document("/health")
            overall = document["status"].string ?? "?"
            if global.output == .json { return emit(document.rendered()) }
            let palette = global.palette
            var table = Table(headers: ["CHECK", "STATUS", "VALUE", "OUTPUT"])
            if case .object(let checks) = document["checks"] {
                for name in checks.keys.sorted() {
                    for check in checks[name]!.array {
                        let value =
                            (check["observedValue"].string ?? "-")
                            + (check["observedUnit"].string.map { " " + $0 } ?? "")
                        table.rows.append([
                            name, palette.word(check["status"].string ?? "?"), value, check["output"].string ?? "",
                        ])
                    }
                }
            }
            emit(palette.word(overall))
            emit(table.render(headers: !global.noHeaders, palette: palette))
        }
        switch overall {
        case "pass": return
        case "warn": throw ExitCode(1)
        case "fail": throw ExitCode(2)
        default:
            FileHandleStandardError.write("vigilctl: /health answered without a status vigilctl knows (\(overall))\n")
            throw ExitCode(3)
        }
    }
}
