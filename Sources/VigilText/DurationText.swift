/// Durations as vigil writes them for people.
public enum DurationText {
    /// How long something lasted, to the unit that matters: `850ms`, `12s`, `3m12s`, `2h05m`,
    /// `3d4h` (log lines, vigilctl's tables).
    public static func human(_ duration: Duration) -> String {
        let (wholeSeconds, attoseconds) = duration.components
        let millis = wholeSeconds * 1000 + attoseconds / 1_000_000_000_000_000
        if millis < 1000 { return "\(max(millis, 0))ms" }
        let seconds = millis / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(pad2(seconds % 60))s" }
        if seconds < 86_400 { return "\(seconds / 3600)h\(pad2(seconds / 60 % 60))m" }
        return "\(seconds / 86_400)d\(seconds % 86_400 / 3600)h"
    }

    /// The exact text a setting takes (`500ms`, `30s`, `2m`, `0`), as `--print-config` shows it.
    public static func setting(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        if nanos == 0 { return "0" }
        if nanos % 60_000_000_000 == 0 { return "\(nanos / 60_000_000_000)m" }
        if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
        if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        return "\(Double(nanos) / 1e6)ms"
    }

    private static func pad2(_ value: Int64) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
