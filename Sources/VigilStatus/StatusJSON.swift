import VigilHost
import VigilRegistry
import VigilSupervisor

/// The status API's JSON documents: snake_case keys, RFC 3339 UTC timestamps with milliseconds,
/// and explicit `null` for values not known yet (JSONEncoder would otherwise omit the key).

/// A JSON object's key, as the identity's field list and the documents below name them.
struct JSONKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension KeyedEncodingContainer<JSONKey> {
    /// `key: value`, `null` when `value` is nil.
    mutating func put(_ key: String, _ value: (some Encodable)?) throws {
        if let value { try encode(value, forKey: JSONKey(key)) } else { try encodeNil(forKey: JSONKey(key)) }
    }

    /// A connection's identity, field by field (`ConnectionIdentity.fields`).
    mutating func put(_ identity: ConnectionIdentity) throws {
        for field in identity.fields {
            switch field.value {
            case .text(let text): try put(field.name, text)
            case .number(let number): try put(field.name, number)
            case .unknown: try encodeNil(forKey: JSONKey(field.name))
            }
        }
    }
}

struct ConnectionJSON: Encodable {
    var snapshot: ConnectionSnapshot

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        let s = snapshot
        try c.put("id", s.id)
        try c.put(s.identity)
        try c.put("opened_at", s.openedAt)
        try c.put("last_seen_at", s.lastSeenAt)
        try c.put("rtt_ms", s.roundTrip.map(\.inMilliseconds))
        try c.put("pings_sent", s.pingsSent)
        try c.put("pongs_received", s.pongsReceived)
        try c.put("app_rtt_ms", s.appRoundTrip.map(\.inMilliseconds))
        try c.put("app_pings_sent", s.appPingsSent)
        try c.put("app_pongs_received", s.appPongsReceived)
        try c.put("messages_in", s.messagesIn)
        try c.put("messages_out", s.messagesOut)
        try c.put("compressed_in", s.compressedIn)
        try c.put("compressed_out", s.compressedOut)
        try c.put("bytes_in", s.bytesIn)
        try c.put("bytes_out", s.bytesOut)
    }
}

/// `GET /history`: the last hour minute by minute, oldest first.
struct HistoryJSON: Encodable {
    var startedAt: Timestamp
    var minutes: [MinuteActivity]

    enum Keys: String, CodingKey { case minutes }
    enum MinuteKeys: String, CodingKey { case start, connections, opened, closes, causes }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        var list = c.nestedUnkeyedContainer(forKey: .minutes)
        for minute in minutes {
            var m = list.nestedContainer(keyedBy: MinuteKeys.self)
            try m.encode(
                Timestamp(nanosecondsSinceEpoch: startedAt.nanosecondsSinceEpoch + minute.minute * 60_000_000_000),
                forKey: .start)
            try m.encode(minute.openAtEnd, forKey: .connections)
            try m.encode(minute.opened, forKey: .opened)
            try m.encode(
                Dictionary(uniqueKeysWithValues: minute.closesByKind.map { ($0.key.rawValue, $0.value) }),
                forKey: .closes)
            try m.encode(
                Dictionary(uniqueKeysWithValues: minute.closesByCause.map { ($0.key.rawValue, $0.value) }),
                forKey: .causes)
        }
    }
}

struct ConnectionListJSON: Encodable {
    /// All open connections (not only this page).
    var count: Int
    var connections: [ConnectionJSON]
    /// The next page's URL, `null` on the last page.
    var next: String?

    enum CodingKeys: CodingKey { case count, connections, next }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(connections, forKey: .connections)
        try c.encode(next, forKey: .next)
    }
}

struct CloseJSON: Encodable {
    var record: CloseRecord

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        let r = record
        try c.put("id", r.id)
        try c.put("seq", r.sequence)
        try c.put(r.identity)
        try c.put("partner_kind", r.outcome.partner?.kind.rawValue)
        try c.put("partner_cause", r.outcome.partner?.cause.rawValue)
        try c.put("kind", r.kind.rawValue)
        try c.put("code", r.outcome.code)
        try c.put("cause", r.cause.rawValue)
        try c.put("initiator", r.outcome.initiator.rawValue)
        try c.put("clean", r.outcome.clean)
        try c.put("reason", r.outcome.reason)
        try c.put("opened_at", r.openedAt)
        try c.put("closed_at", r.closedAt)
        try c.put("duration_ms", Int64(r.duration.inMilliseconds))
        try c.put("last_rtt_ms", r.lastRoundTrip.map(\.inMilliseconds))
        try c.put("last_app_rtt_ms", r.lastAppRoundTrip.map(\.inMilliseconds))
        try c.put("messages_in", r.messagesIn)
        try c.put("messages_out", r.messagesOut)
        try c.put("compressed_in", r.compressedIn)
        try c.put("compressed_out", r.compressedOut)
    }
}

struct CloseListJSON: Encodable {
    /// Retained records matching the filter (before `limit`).
    var total: Int
    var closes: [CloseJSON]
    /// The next page's URL, `null` on the last page.
    var next: String?

    enum CodingKeys: CodingKey { case total, closes, next }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(total, forKey: .total)
        try c.encode(closes, forKey: .closes)
        try c.encode(next, forKey: .next)
    }
}

struct StatusJSON: Encodable {
    var state: String
    var uptime_s: Int64
    var connections: Int
    var handshakes_pending: Int
    var closes: [String: UInt64]
    var causes: [String: UInt64]
    var closes_total: UInt64
    var closes_last_minute: [String: UInt64]
    var config: [String: String]
}

struct ErrorJSON: Encodable {
    var error: String
}

/// `application/health+json` (draft-inadarei-api-health-check): its field names are the
/// draft's own (`observedValue`), not snake_case.
struct HealthJSON: Encodable {
    enum Status: String, Encodable, Comparable {
        case pass, warn, fail

        static func < (lhs: Self, rhs: Self) -> Bool {
            let order: [Status] = [.pass, .warn, .fail]
            return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
        }
    }

    struct Check: Encodable {
        var status: Status
        var observedValue: Observed
        var observedUnit: String?
        var output: String?
    }

    enum Observed: Encodable {
        case number(Int)
        case text(String)

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .number(let value): try c.encode(value)
            case .text(let value): try c.encode(value)
            }
        }
    }

    var status: Status
    var checks: [String: [Check]]
}

/// One monitor target in `/targets`.
struct TargetJSON: Encodable {
    var report: TargetReport

    enum ConnectionKeys: String, CodingKey { case id, peer, opened_at, rtt_ms, pings_sent, pongs_received, compression }
    enum DialErrorKeys: String, CodingKey { case at, phase, error, http_status }

    func encode(to encoder: any Encoder) throws {
        let r = report
        var c = encoder.container(keyedBy: JSONKey.self)
        try c.put("name", r.name)
        try c.put("url", r.url)
        try c.put("critical", r.critical)
        try c.put("state", r.state)
        try c.put("since", r.since)
        try c.put("next_attempt_at", r.nextAttemptAt)
        try c.put("next_attempt_rule", r.nextAttemptRule)
        if let snapshot = r.connection {
            var nested = c.nestedContainer(keyedBy: ConnectionKeys.self, forKey: JSONKey("connection"))
            try nested.encode(snapshot.id, forKey: .id)
            try nested.encode(snapshot.identity.peer, forKey: .peer)
            try nested.encode(snapshot.openedAt, forKey: .opened_at)
            try nested.encode(snapshot.roundTrip.map(\.inMilliseconds), forKey: .rtt_ms)
            try nested.encode(snapshot.pingsSent, forKey: .pings_sent)
            try nested.encode(snapshot.pongsReceived, forKey: .pongs_received)
            try nested.encode(snapshot.identity.compression, forKey: .compression)
        } else {
            try c.encodeNil(forKey: JSONKey("connection"))
        }
        try c.put("reply_ms", r.lastReply.map(\.inMilliseconds))
        try c.put("command_timeouts", r.commandTimeouts)
        try c.put("last_close", r.lastClose.map(CloseJSON.init))
        if let error = r.lastDialError {
            var nested = c.nestedContainer(keyedBy: DialErrorKeys.self, forKey: JSONKey("last_dial_error"))
            try nested.encode(error.at, forKey: .at)
            try nested.encode(error.phase, forKey: .phase)
            try nested.encode(error.message, forKey: .error)
            try nested.encode(error.httpStatus, forKey: .http_status)
        } else {
            try c.encodeNil(forKey: JSONKey("last_dial_error"))
        }
        try c.put("consecutive_failures", r.consecutiveFailures)
        try c.put("attempts", r.attempts)
        try c.put("reconnects", r.reconnects)
        try c.put("uptime_ratio_1h", (r.uptimeRatio * 10_000).rounded() / 10_000)
    }
}

struct TargetListJSON: Encodable {
    var targets: [TargetJSON]
}

struct RouteListJSON: Encodable {
    var routes: [RouteJSON]
}

/// A route as `/routes` lists it.
struct RouteJSON: Encodable {
    var name: String
    var path: String
    /// `null`: any host.
    var host: [String]?
    var mode: String
    var balance: String?
    var members: [MemberJSON]

    struct MemberJSON: Encodable {
        var name: String
        var url: String
        var up: Bool
        var pairs: Int
        var drain: Bool
    }

    init(_ report: RouteReport) {
        name = report.name
        path = report.path
        host = report.hosts.isEmpty ? nil : report.hosts
        mode = report.mode
        balance = report.balance
        members = report.members.map {
            MemberJSON(name: $0.name, url: $0.url, up: $0.up, pairs: $0.pairs, drain: $0.drain)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(path, forKey: .path)
        try container.encode(host, forKey: .host)  // null, not left out: "any host"
        try container.encode(mode, forKey: .mode)
        try container.encode(balance, forKey: .balance)
        try container.encode(members, forKey: .members)
    }

    enum CodingKeys: String, CodingKey {
        case name, path, host, mode, balance, members
    }
}
