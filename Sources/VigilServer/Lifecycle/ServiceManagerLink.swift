import Logging
import NIOConcurrencyHelpers
import Synchronization
import VigilConnection
import VigilServiceManager
import VigilSupervisor

/// Keeps the service manager informed: STATUS at most once a second and only on change,
/// WATCHDOG while every event loop turns. A notifier that cannot be reached is reported once
/// and otherwise ignored: the daemon never stops over it.
final class ServiceManagerLink: Sendable {
    private let notifier: any ServiceNotifier
    private let logger: Logger
    private let reportedFailure = Atomic<Bool>(false)
    private let lastStatus = NIOLockedValueBox<String?>(nil)

    init(notifier: any ServiceNotifier, logger: Logger) {
        self.notifier = notifier
        self.logger = logger
    }

    func send(_ notification: ServiceNotification) {
        if case .status(let text) = notification {
            lastStatus.withLockedValue { $0 = text }
        }
        guard !notifier.send(notification) else { return }
        if !reportedFailure.exchange(true, ordering: .relaxed) {
            logger.warning(
                "cannot reach the service manager's notification socket; carrying on without notifications",
                metadata: ["notification": "\(notification.text.split(separator: "\n").first ?? "")"])
        }
    }

    /// Sends the status if it differs from the last one sent.
    func report(status: String) {
        let changed = lastStatus.withLockedValue { last in
            defer { last = status }
            return last != status
        }
        if changed { send(.status(status)) }
    }

    /// Reports `status()` once a second (when it changed) until cancelled.
    func runStatusUpdates(_ status: @Sendable () -> String) async {
        while !Task.isCancelled {
            report(status: status())
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Sends WATCHDOG=1 every `gate.pingPeriod` while the liveness probe shows every loop turning.
    func runWatchdog(gate: WatchdogGate, liveness: EventLoopLiveness) async {
        var withheld = false
        while !Task.isCancelled {
            if gate.shouldPing(beatAges: liveness.beatAges(now: ConnectionClock.system.now())) {
                send(.watchdog)
                if withheld {
                    logger.notice("every event loop is turning again; watchdog keep-alives resumed")
                    withheld = false
                }
            } else if !withheld {
                withheld = true
                logger.error(
                    "an event loop has not run a task for over \(gate.maxBeatAge); withholding watchdog keep-alives")
            }
            try? await Task.sleep(for: gate.pingPeriod)
        }
    }
}
