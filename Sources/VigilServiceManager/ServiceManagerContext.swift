/// What vigild receives from the service manager that started it (all optional).
public struct ServiceManagerContext: Sendable {
    /// Where READY, STATUS, RELOADING, STOPPING and WATCHDOG go (sd_notify).
    public var notifier: (any ServiceNotifier)?
    /// The watchdog interval (`WatchdogSec=`), when the manager expects keep-alives.
    public var watchdogInterval: Duration?
    /// Listening sockets passed by socket activation, adopted instead of binding.
    public var inheritedSockets: InheritedSockets?

    public init(
        notifier: (any ServiceNotifier)? = nil, watchdogInterval: Duration? = nil,
        inheritedSockets: InheritedSockets? = nil
    ) {
        self.notifier = notifier
        self.watchdogInterval = watchdogInterval
        self.inheritedSockets = inheritedSockets
    }
}

/// Listening sockets handed over by socket activation (`LISTEN_FDS`, named by `FileDescriptorName=`).
public struct InheritedSockets: Sendable, Hashable {
    public var webSocket: Int32
    public var status: Int32

    public init(webSocket: Int32, status: Int32) {
        self.webSocket = webSocket
        self.status = status
    }
}
