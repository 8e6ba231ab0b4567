import VigilConnection
import VigilRegistry
import VigilSupervisor

/// The status API's JSON documents: snake_case keys, RFC 3339 UTC timestamps with milliseconds,
/// and explicit `null` for values not known yet (JSONEncoder would otherwise omit the key).

struct ConnectionJSON: Encodable {
    var snapshot: ConnectionSnapshot

    enum Keys: String, CodingKey {
        case id, peer, client, path, leg, direction, target, pair_id, upstream, opened_at, last_seen_at, rtt_ms, pings_sent
        case pongs_received, app_rtt_ms, app_pings_sent, app_pongs_received, messages_in, messages_out, bytes_in, bytes_out
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        let s = snapshot
        try c.encode(s.id, forKey: .id)
        try c.encode(s.peer, forKey: .peer)
        try c.encode(s.client, forKey: .client)
        try c.encode(s.path, forKey: .path)
        try c.encode(s.leg.rawValue, forKey: .leg)
        try c.encode(s.leg.direction, forKey: .direction)
        try c.encode(s.target, forKey: .target)
        try c.encode(s.pair?.pairID, forKey: .pair_id)
        try c.encode(s.pair?.upstream, forKey: .upstream)
        try c.encode(s.openedAt, forKey: .opened_at)
        try c.encode(s.lastSeenAt, forKey: .last_seen_at)
        try c.encode(s.roundTrip.map(\.inMilliseconds), forKey: .rtt_ms)
        try c.encode(s.pingsSent, forKey: .pings_sent)
        try c.encode(s.pongsReceived, forKey: .pongs_received)
        try c.encode(s.appRoundTrip.map(\.inMilliseconds), forKey: .app_rtt_ms)
        try c.encode(s.appPingsSent, forKey: .app_pings_sent)
        try c.encode(s.appPongsReceived, forKey: .app_pongs_received)
        try c.encode(s.messagesIn, forKey: .messages_in)
        try c.encode(s.messagesOut, forKey: .messages_out)
        try c.encode(s.bytesIn, forKey: .bytes_in)
        try c.encode(s.bytesOut, forKey: .bytes_out)
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
                Timestamp(nanosecondsSinceEpoch: startedAt.nanosecondsSinceEpoch + minute.minute * 60_000_000_000), forKey: .start)
            try m.encode(minute.openAtEnd, forKey: .connections)
            try m.encode(minute.opened, forKey: .opened)
            try m.encode(Dictionary(uniqueKeysWithValues: minute.closesByKind.map { ($0.key.rawValue, $0.value) }), forKey: .closes)
            try m.encode(Dictionary(uniqueKeysWithValues: minute.closesByCause.map { ($0.key.rawValue, $0.value) }), forKey: .causes)
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

    enum Keys: String, CodingKey {
        case id, seq, peer, client, path, leg, direction, target, pair_id, upstream, kind, code, cause, initiator, clean, reason
        case partner_kind, partner_cause, opened_at, closed_at, duration_ms, last_rtt_ms, last_app_rtt_ms, messages_in, messages_out
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        let r = record
        try c.encode(r.id, forKey: .id)
        try c.encode(r.sequence, forKey: .seq)
        try c.encode(r.peer, forKey: .peer)
        try c.encode(r.client, forKey: .client)
        try c.encode(r.path, forKey: .path)
        try c.encode(r.leg.rawValue, forKey: .leg)
        try c.encode(r.leg.direction, forKey: .direction)
        try c.encode(r.target, forKey: .target)
        try c.encode(r.pair?.pairID, forKey: .pair_id)
        try c.encode(r.pair?.upstream, forKey: .upstream)
        try c.encode(r.outcome.partner?.kind.rawValue, forKey: .partner_kind)
        try c.encode(r.outcome.partner?.cause.rawValue, forKey: .partner_cause)
        try c.encode(r.kind.rawValue, forKey: .kind)
        try c.encode(r.outcome.code, forKey: .code)
        try c.encode(r.cause.rawValue, forKey: .cause)
        try c.encode(r.outcome.initiator.rawValue, forKey: .initiator)
        try c.encode(r.outcome.clean, forKey: .clean)
        try c.encode(r.outcome.reason, forKey: .reason)
        try c.encode(r.openedAt, forKey: .opened_at)
        try c.encode(r.closedAt, forKey: .closed_at)
        try c.encode(Int64(r.duration.inMilliseconds), forKey: .duration_ms)
        try c.encode(r.lastRoundTrip.map(\.inMilliseconds), forKey: .last_rtt_ms)
        try c.encode(r.lastAppRoundTrip.map(\.inMilliseconds), forKey: .last_app_rtt_ms)
        try c.encode(r.messagesIn, forKey: .messages_in)
        try c.encode(r.messagesOut, forKey: .messages_out)
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
    var monitor: TargetMonitor

    enum Keys: String, CodingKey {
        case name, url, critical, state, since, next_attempt_at, next_attempt_rule, connection, reply_ms, command_timeouts
        case last_close, last_dial_error, consecutive_failures, attempts, reconnects, uptime_ratio_1h
    }

    enum ConnectionKeys: String, CodingKey { case id, peer, opened_at, rtt_ms, pings_sent, pongs_received }
    enum DialErrorKeys: String, CodingKey { case at, phase, error, http_status }

    func encode(to encoder: any Encoder) throws {
        let state = monitor.snapshot
        let target = monitor.target
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(target.name, forKey: .name)
        try c.encode(target.url.description, forKey: .url)
        try c.encode(target.critical, forKey: .critical)
        try c.encode(state.phase.rawValue, forKey: .state)
        try c.encode(state.since, forKey: .since)
        try c.encode(state.nextAttemptAt, forKey: .next_attempt_at)
        try c.encode(state.nextAttemptRule?.rawValue, forKey: .next_attempt_rule)
        if let snapshot = state.connection?.snapshot() {
            var nested = c.nestedContainer(keyedBy: ConnectionKeys.self, forKey: .connection)
            try nested.encode(snapshot.id, forKey: .id)
            try nested.encode(snapshot.peer, forKey: .peer)
            try nested.encode(snapshot.openedAt, forKey: .opened_at)
            try nested.encode(snapshot.roundTrip.map(\.inMilliseconds), forKey: .rtt_ms)
            try nested.encode(snapshot.pingsSent, forKey: .pings_sent)
            try nested.encode(snapshot.pongsReceived, forKey: .pongs_received)
        } else {
            try c.encodeNil(forKey: .connection)
        }
        try c.encode(state.lastReply.map(\.inMilliseconds), forKey: .reply_ms)
        try c.encode(state.commandTimeouts, forKey: .command_timeouts)
        try c.encode(state.lastClose.map(CloseJSON.init), forKey: .last_close)
        if let error = state.lastDialError {
            var nested = c.nestedContainer(keyedBy: DialErrorKeys.self, forKey: .last_dial_error)
            try nested.encode(error.at, forKey: .at)
            try nested.encode(error.failure.phase, forKey: .phase)
            try nested.encode(error.failure.description, forKey: .error)
            if case .refused(let refusal) = error.failure {
                try nested.encode(refusal.status, forKey: .http_status)
            } else {
                try nested.encodeNil(forKey: .http_status)
            }
        } else {
            try c.encodeNil(forKey: .last_dial_error)
        }
        try c.encode(state.consecutiveFailures, forKey: .consecutive_failures)
        try c.encode(state.attempts, forKey: .attempts)
        try c.encode(state.reconnects, forKey: .reconnects)
        try c.encode((state.uptime.ratio(at: ConnectionClock.system.now()) * 10_000).rounded() / 10_000, forKey: .uptime_ratio_1h)
    }
}

struct TargetListJSON: Encodable {
    var targets: [TargetJSON]
}
