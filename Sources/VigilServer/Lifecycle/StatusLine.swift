import VigilSupervisor

/// The one-line status vigild reports to the service manager:
/// `serving 1234 connections; last 60 s: 12 normal, 3 abnormal, 1 eof`.
enum StatusLine {
    static func text(active: Int, lastMinute: [CloseKind: UInt64]) -> String {
        let closes = CloseKind.allCases.compactMap { kind in
            lastMinute[kind].flatMap { $0 > 0 ? "\($0) \(kind.rawValue)" : nil }
        }
        let noun = active == 1 ? "connection" : "connections"
        return "serving \(active) \(noun); last 60 s: "
            + (closes.isEmpty ? "no closes" : closes.joined(separator: ", "))
    }
}
