import VigilSupervisor

/// When a target was up over the last hour, for its uptime ratio: the intervals it was up,
/// trimmed to the window as time passes.
struct UptimeWindow: Sendable {
    static let length = Duration.seconds(3600)

    private let startedAt: MonotonicInstant
    /// Closed intervals, oldest first, and the open one's start.
    private var intervals: [(from: MonotonicInstant, to: MonotonicInstant)] = []
    private var upSince: MonotonicInstant?

    init(startedAt: MonotonicInstant) {
        self.startedAt = startedAt
    }

    mutating func wentUp(at now: MonotonicInstant) {
        upSince = now
    }

    mutating func wentDown(at now: MonotonicInstant) {
        guard let since = upSince else { return }
        intervals.append((since, now))
        upSince = nil
        let windowStart = now - Self.length
        intervals.removeAll { $0.to <= windowStart }
    }

    /// The share of the last hour (or of the time since the monitor started, when shorter)
    /// the target was up: 0 to 1.
    func ratio(at now: MonotonicInstant) -> Double {
        let windowStart = max(now - Self.length, startedAt)
        let span = now - windowStart
        guard span > .zero else { return upSince == nil ? 0 : 1 }
        var up = Duration.zero
        for interval in intervals + (upSince.map { [($0, now)] } ?? []) {
            let from = max(interval.from, windowStart)
            if interval.to > from { up += interval.to - from }
        }
        return min(1, up.inMilliseconds / span.inMilliseconds)
    }
}
