import Logging
import VigilRegistry
import VigilSupervisor

/// One log line per close, at a level that matches how worrying the close is, with every field
/// of the record as metadata.
enum CloseLogging {
    static func level(for kind: CloseKind) -> Logger.Level {
        switch kind {
        case .normal, .goingAway: .info
        case .eof: .notice
        case .abnormal, .error: .warning
        }
    }

    static func log(_ record: CloseRecord, to logger: Logger) {
        var metadata: Logger.Metadata = [
            "close_kind": "\(record.kind.rawValue)",
            "close_code": "\(record.outcome.code)",
            "close_cause": "\(record.cause.rawValue)",
            "close_initiator": "\(record.outcome.initiator.rawValue)",
            "close_clean": "\(record.outcome.clean)",
            "close_reason": "\(record.outcome.reason)",
            "duration_ms": "\(Int64(record.duration.inMilliseconds))",
            "messages_in": "\(record.messagesIn)",
            "messages_out": "\(record.messagesOut)",
        ]
        if let rtt = record.lastRoundTrip {
            metadata["rtt_ms"] = "\(rtt.inMilliseconds)"
        }
        logger.log(level: level(for: record.kind), "\(message(for: record))", metadata: metadata)
    }

    /// `connection 42 from 10.0.0.7:51234 (client=kiosk-3) closed: abnormal (pong_timeout) after 3m12s`
    static func message(for record: CloseRecord) -> String {
        let client = record.client.map { " (client=\($0))" } ?? ""
        return "connection \(record.id) from \(record.peer)\(client) closed: \(record.kind.rawValue) (\(record.cause.rawValue)) after \(humanDuration(record.duration))"
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
