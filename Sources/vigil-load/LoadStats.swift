import Histogram
import NIOConcurrencyHelpers
import Synchronization

/// What every connection of a load run counts, shared across event loops.
final class LoadStats: Sendable {
    let connected = Atomic<Int>(0)
    let open = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let pings = Atomic<Int>(0)
    let pongsSent = Atomic<Int>(0)
    let echoes = Atomic<Int>(0)
    /// Connections the server ended: with a close frame (by code) or without one.
    let closeCodes = NIOLockedValueBox<[String: Int]>([:])
    let dropped = Atomic<Int>(0)
    /// Echo round trips, microseconds.
    let latency = NIOLockedValueBox(
        Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))
    /// From the first unanswered ping to the server's close, microseconds (`--no-pong`).
    let detection = NIOLockedValueBox(
        Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three))
    /// Whether echo loops keep sending.
    let echoing = Atomic<Bool>(false)

    func noteClose(code: UInt16?) {
        closeCodes.withLockedValue { $0[code.map(String.init) ?? "none", default: 0] += 1 }
    }

    static func summary(_ histogram: Histogram<UInt64>) -> [String: Double] {
        guard histogram.totalCount > 0 else { return ["count": 0] }
        return [
            "count": Double(histogram.totalCount),
            "p50_ms": Double(histogram.valueAtPercentile(50)) / 1000,
            "p99_ms": Double(histogram.valueAtPercentile(99)) / 1000,
            "max_ms": Double(histogram.max) / 1000,
        ]
    }
}
