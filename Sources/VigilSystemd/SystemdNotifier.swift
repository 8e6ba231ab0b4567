import CSystemd
import VigilServiceManager

/// sd_notify(3): sends notifications to `$NOTIFY_SOCKET`, as set by the service manager.
public struct SystemdNotifier: ServiceNotifier {
    /// A notifier when `NOTIFY_SOCKET` is set, else `nil` (not started by a service manager).
    public init?(environment: [String: String]) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
    }

    public func send(_ notification: ServiceNotification) -> Bool {
        if case .ready = notification {
            // Log entries go to the journal from their own thread; the ready line logged just
            // before must be there before systemd logs "Started", or the journal tells the story
            // out of order. Bounded: a journald that is not draining does not hold startup up.
            _ = JournalQueue.shared.flush(timeout: .seconds(1))
        }
        return sd_notify(0, notification.text) > 0
    }
}

/// sd_watchdog_enabled(3): the watchdog interval the service manager expects keep-alives at.
public enum SystemdWatchdog {
    public enum Setting: Sendable, Hashable {
        /// No watchdog (unset, or meant for another process per `WATCHDOG_PID`).
        case disabled
        case enabled(interval: Duration)
        /// `WATCHDOG_USEC`/`WATCHDOG_PID` could not be parsed; `description` says which value.
        case invalid(description: String)
    }

    public static func setting(environment: [String: String]) -> Setting {
        var microseconds: UInt64 = 0
        let result = sd_watchdog_enabled(0, &microseconds)
        if result > 0 { return .enabled(interval: .microseconds(microseconds)) }
        if result == 0 { return .disabled }
        let usec = environment["WATCHDOG_USEC"].map { "WATCHDOG_USEC=\"\($0)\"" } ?? "WATCHDOG_USEC unset"
        let pid = environment["WATCHDOG_PID"].map { ", WATCHDOG_PID=\"\($0)\"" } ?? ""
        return .invalid(description: "\(usec)\(pid): \(String(cString: strerror(-result)))")
    }
}
