import Logging
import VigilRegistry
import VigilSupervisor
import VigilText

/// One log line per close, at a level that matches how worrying the close is, with every field
/// of the record as metadata.
public enum CloseLogging {
    public static func level(for kind: CloseKind) -> Logger.Level {
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
            LogKey.messageID: "\(messageID)",
            LogKey.connectionID: "\(record.id)",
            LogKey.closeKind: "\(record.kind.rawValue)",
            LogKey.closeCode: "\(outcome.code)",
            LogKey.closeCause: "\(record.cause.rawValue)",
            LogKey.closeInitiator: "\(outcome.initiator.rawValue)",
            LogKey.closeClean: "\(outcome.clean)",
            LogKey.closeReason: "\(outcome.reason)",
            LogKey.duration: "\(Int64(record.duration.inMilliseconds))",
            LogKey.roundTrip: "\(record.lastRoundTrip.map { "\($0.inMilliseconds)" } ?? "")",
            LogKey.messagesIn: "\(record.messagesIn)",
            LogKey.messagesOut: "\(record.messagesOut)",
        ]
        for (key, value) in record.identity.logFields { metadata[key] = "\(value)" }
        if record.identity.compression != nil {  // permessage-deflate agreed: what went compressed
            metadata[LogKey.compressedIn] = "\(record.compressedIn)"
            metadata[LogKey.compressedOut] = "\(record.compressedOut)"
        }
        if let appRoundTrip = record.lastAppRoundTrip {
            metadata[LogKey.appRoundTrip] = "\(appRoundTrip.inMilliseconds)"
        }
        if let partner = outcome.partner {
            metadata[LogKey.partnerKind] = "\(partner.kind.rawValue)"
            metadata[LogKey.partnerCause] = "\(partner.cause.rawValue)"
        }
        logger.log(level: level(for: record.kind), "\(message(for: record))", metadata: metadata)
    }

    /// `connection 42 from 10.0.0.7:51234 (client=kiosk-3) closed: abnormal (pong_timeout) after 3m12s`;
    /// a proxy's legs: `connection 43 (pair 7, client leg) from …`, `connection 44 (pair 7, upstream leg) to …`;
    /// a monitor target's: `connection 45 (target market-feed) to …`.
    static func message(for record: CloseRecord) -> String {
        let identity = record.identity
        let client = identity.client.map { " (client=\(quotedIfNeeded($0)))" } ?? ""
        let pair =
            identity.target.map { " (target \($0))" } ?? identity.pair.map {
                " (pair \($0.pairID), \(identity.leg.rawValue) leg)"
            } ?? ""
        let direction = identity.leg == .client ? "from" : "to"
        return
            "connection \(record.id)\(pair) \(direction) \(identity.peer)\(client) closed: \(record.kind.rawValue) (\(record.cause.rawValue)) after \(DurationText.human(record.duration))"
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
        return "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            + "\""
    }

}
