import Logging
import VigilRegistry
import VigilSupervisor

/// One log line per close, at a level that matches how worrying the close is, with every field
/// of the record as metadata.
public enum CloseLogging {
    static func level(for kind: CloseKind) -> Logger.Level {
        switch kind {
        case .normal, .goingAway: .info
        case .eof: .notice
        case .abnormal, .error: .warning
        }
    }

    /// The journal's MESSAGE_ID of every close entry (`journalctl MESSAGE_ID=…` lists them all).
    public static let messageID = "5bfe117f0f644f8c8afabe45870ad1cb"

    /// Logs the close. Close lines are records, not chatter: they are written whatever the
    /// configured log level. The metadata keys become the journal fields `WS_CONN_ID`,
    /// `WS_CLOSE_KIND`, … (the journal backend uppercases them); `WS_CLIENT` and `WS_RTT_MS`
    /// are empty when unknown.
    static func log(_ record: CloseRecord, to connectionLogger: Logger) {
        var logger = connectionLogger
        if logger.logLevel > .info { logger.logLevel = .info }
        let outcome = record.outcome
        var metadata: Logger.Metadata = [
            "message_id": "\(messageID)",
            "ws_conn_id": "\(record.id)",
            "ws_peer": "\(record.peer)",
            "ws_client": "\(record.client ?? "")",
            "ws_path": "\(record.path)",
            "ws_close_kind": "\(record.kind.rawValue)",
            "ws_close_code": "\(outcome.code)",
            "ws_close_cause": "\(record.cause.rawValue)",
            "ws_close_initiator": "\(outcome.initiator.rawValue)",
            "ws_close_clean": "\(outcome.clean)",
            "ws_close_reason": "\(outcome.reason)",
            "ws_duration_ms": "\(Int64(record.duration.inMilliseconds))",
            "ws_rtt_ms": "\(record.lastRoundTrip.map { "\($0.inMilliseconds)" } ?? "")",
            "ws_messages_in": "\(record.messagesIn)",
            "ws_messages_out": "\(record.messagesOut)",
            "ws_leg": "\(record.leg.rawValue)",
            "ws_direction": "\(record.leg.direction)",
        ]
        if let target = record.target {
            metadata["ws_target"] = "\(target)"
        }
        if let appRoundTrip = record.lastAppRoundTrip {
            metadata["ws_app_rtt_ms"] = "\(appRoundTrip.inMilliseconds)"
        }
        if let pair = record.pair {
            metadata["ws_pair_id"] = "\(pair.pairID)"
            metadata["ws_upstream"] = "\(pair.upstream)"
        }
        if let partner = outcome.partner {
            metadata["ws_partner_kind"] = "\(partner.kind.rawValue)"
            metadata["ws_partner_cause"] = "\(partner.cause.rawValue)"
        }
        logger.log(level: level(for: record.kind), "\(message(for: record))", metadata: metadata)
    }

    /// `connection 42 from 10.0.0.7:51234 (client=kiosk-3) closed: abnormal (pong_timeout) after 3m12s`;
    /// a proxy's legs: `connection 43 (pair 7, client leg) from …`, `connection 44 (pair 7, upstream leg) to …`;
    /// a monitor target's: `connection 45 (target market-feed) to …`.
    static func message(for record: CloseRecord) -> String {
        let client = record.client.map { " (client=\(quotedIfNeeded($0)))" } ?? ""
        let pair = record.target.map { " (target \($0))" } ?? record.pair.map { " (pair \($0.pairID), \(record.leg.rawValue) leg)" } ?? ""
        let direction = record.leg == .client ? "from" : "to"
        return "connection \(record.id)\(pair) \(direction) \(record.peer)\(client) closed: \(record.kind.rawValue) (\(record.cause.rawValue)) after \(humanDuration(record.duration))"
    }

    /// A client name as it stands in a message: bare when it is letters, digits and `.-_:@`,
    /// else in double quotes with `"` and `\\` escaped (names are printable ASCII already), so
    /// `kiosk ws_close_kind=normal` cannot read as a field.
    static func quotedIfNeeded(_ name: String) -> String {
        let plain = name.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || ".-_:@".unicodeScalars.contains(scalar)
        }
        if plain { return name }
        return "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// `850ms`, `12s`, `3m12s`, `2h05m`
    static func humanDuration(_ duration: Duration) -> String {
        let millis = Int64(duration.inMilliseconds)
        if millis < 1000 { return "\(millis)ms" }
        let seconds = millis / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(pad2(seconds % 60))s" }
        return "\(seconds / 3600)h\(pad2(seconds / 60 % 60))m"
    }

    private static func pad2(_ value: Int64) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
