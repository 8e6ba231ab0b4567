import Logging
import NIOConcurrencyHelpers

/// Log lines about what one address does, at most one per address and `interval`, each with
/// how many went unlogged since: a flood from one address is one line a minute, not one per
/// connection.
final class OncePerAddressLog: Sendable {
    let interval: Duration
    private let entries = NIOLockedValueBox<[String: (loggedAt: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(interval: Duration = .seconds(60)) {
        self.interval = interval
    }

    /// Logs `message` about `address` unless a line about it went out within the interval.
    /// `message` is told how many were left out since the last line.
    func log(
        _ logger: Logger, level: Logger.Level = .warning, address: String, metadata: Logger.Metadata = [:],
        _ message: (_ suppressed: Int) -> String
    ) {
        let now = ContinuousClock.now
        let suppressed: Int? = entries.withLockedValue { entries in
            if let entry = entries[address], now - entry.loggedAt < interval {
                entries[address]!.suppressed += 1
                return nil
            }
            let suppressed = entries[address]?.suppressed ?? 0
            if entries.count > 10_000 { entries = entries.filter { now - $0.value.loggedAt < interval } }
            entries[address] = (now, 0)
            return suppressed
        }
        guard let suppressed else { return }
        var metadata = metadata
        metadata["address"] = "\(address)"
        metadata["suppressed"] = "\(suppressed)"
        logger.log(level: level, "\(message(suppressed))", metadata: metadata)
    }
}
