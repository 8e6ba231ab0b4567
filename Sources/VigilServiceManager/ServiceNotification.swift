/// A state change reported to the service manager, in sd_notify(3)'s datagram format:
/// newline-separated `KEY=value` assignments.
public enum ServiceNotification: Sendable, Hashable {
    /// Every listener is bound and serving.
    case ready(mainPID: Int32, status: String)
    /// Free-form status text (`systemctl status` shows it).
    case status(String)
    /// Shutdown has begun, and will take up to `needs` (sent as `EXTEND_TIMEOUT_USEC`, so a
    /// drain longer than `TimeoutStopSec=` is not cut short by SIGKILL).
    case stopping(status: String, needs: Duration)
    /// A reload has begun; `monotonicMicroseconds` is CLOCK_MONOTONIC now, as `Type=notify-reload` requires.
    case reloading(monotonicMicroseconds: UInt64, status: String)
    /// Keep-alive for the service watchdog.
    case watchdog

    public var text: String {
        switch self {
        case .ready(let pid, let status):
            "READY=1\nMAINPID=\(pid)\nSTATUS=\(Self.oneLine(status))"
        case .status(let status):
            "STATUS=\(Self.oneLine(status))"
        case .stopping(let status, let needs):
            "STOPPING=1\nEXTEND_TIMEOUT_USEC=\(Self.microseconds(needs))\nSTATUS=\(Self.oneLine(status))"
        case .reloading(let microseconds, let status):
            "RELOADING=1\nMONOTONIC_USEC=\(microseconds)\nSTATUS=\(Self.oneLine(status))"
        case .watchdog:
            "WATCHDOG=1"
        }
    }

    static func microseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    /// Assignments are newline-separated, so a value must not contain one.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}

/// Delivers notifications to the service manager (sd_notify). Implemented by VigilSystemd.
public protocol ServiceNotifier: Sendable {
    /// Sends one notification; `false` when it could not be delivered.
    func send(_ notification: ServiceNotification) -> Bool
}
