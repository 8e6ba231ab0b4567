/// Decides whether vigild may tell the service manager it is alive.
///
/// A WATCHDOG=1 is only honest when every event loop is turning: each loop records a beat every
/// `beatPeriod`, and a ping goes out (every `pingPeriod`, half the watchdog interval) only while
/// every loop's last beat is at most `maxBeatAge` old. A stalled loop therefore stops the pings
/// and the service manager restarts vigild one interval later.
public struct WatchdogGate: Sendable, Hashable {
    /// `WatchdogSec=`, as `WATCHDOG_USEC` carries it.
    public let interval: Duration

    public init(interval: Duration) {
        self.interval = interval
    }

    public var pingPeriod: Duration { interval / 2 }
    public var beatPeriod: Duration { interval / 4 }
    public var maxBeatAge: Duration { interval / 2 }

    /// `beatAges`: how long ago each event loop last beat; a loop that never beat (`nil`)
    /// counts as stalled.
    public func shouldPing(beatAges: [Duration?]) -> Bool {
        !beatAges.isEmpty && beatAges.allSatisfy { age in age.map { $0 <= maxBeatAge } ?? false }
    }
}
