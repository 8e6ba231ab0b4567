import Logging
import NIOConcurrencyHelpers
import NIOCore
import VigilConfig
import VigilFraming
import VigilHost
import VigilRegistry

/// Every configured monitor target's monitor, by name. A reload reconciles the set: new
/// targets start, removed ones stop (their connection closed with 1001), changed ones restart,
/// and the others are not touched.
public final class MonitorTargets: Sendable {
    private let host: ConnectionHost
    private let group: any EventLoopGroup
    private let monitors = NIOLockedValueBox<[String: TargetMonitor]>([:])
    /// The names in configuration order, for reports.
    private let order = NIOLockedValueBox<[String]>([])
    private let stopped = NIOLockedValueBox(false)

    public init(host: ConnectionHost, group: any EventLoopGroup) {
        self.host = host
        self.group = group
    }

    /// What a reconcile did, by target name.
    public struct Changes: Sendable {
        public var added: [String] = []
        public var removed: [String] = []
        public var changed: [String] = []
        public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
    }

    /// Makes the running monitors match `settings.targets`. Every monitor is built before any
    /// is started or stopped, so a target that cannot be set up (an unreadable `ca_file`)
    /// changes nothing.
    @discardableResult
    public func reconcile(_ settings: VigilSettings) throws -> Changes {
        guard !stopped.withLockedValue({ $0 }) else { return Changes() }
        let running = monitors.withLockedValue { $0 }
        var changes = Changes()
        var fresh: [String: TargetMonitor] = [:]
        for target in settings.targets {
            if let existing = running[target.name], existing.target == target {
                existing.adopt(backoff: settings.reconnectBackoff)
                continue
            }
            fresh[target.name] = try TargetMonitor(
                target: target, eventLoop: group.next(), host: host, backoff: settings.reconnectBackoff,
                connectTimeout: settings.handshakeTimeout,
                deflate: settings.compression
                    ? (
                        PerMessageDeflate.Configuration(
                            maxWindowBits: settings.compressionWindowBits,
                            noContextTakeover: !settings.compressionContextTakeover,
                            // A client takes what the server agrees to: demanding that it reset
                            // its context would fail a dial a server may rightly answer otherwise.
                            requestPeerNoContextTakeover: false),
                        DeflateOptions(level: settings.compressionLevel, minimumSize: settings.compressionMinSize)
                    ) : nil)
            if running[target.name] == nil {
                changes.added.append(target.name)
            } else {
                changes.changed.append(target.name)
            }
        }
        let wanted = Set(settings.targets.map(\.name))
        changes.removed = running.keys.filter { !wanted.contains($0) }.sorted()
        for name in changes.removed { running[name]?.remove() }
        for name in changes.changed { running[name]?.stop(reason: "target changed in the configuration") }
        monitors.withLockedValue { all in
            for name in changes.removed { all[name] = nil }
            for (name, monitor) in fresh { all[name] = monitor }
        }
        order.withLockedValue { $0 = settings.targets.map(\.name) }
        for monitor in fresh.values { monitor.start() }
        return changes
    }

    /// Stops every monitor (vigild is stopping): no more dials; the drain closes the connections.
    public func stopAll() {
        stopped.withLockedValue { $0 = true }
        for monitor in monitors.withLockedValue({ Array($0.values) }) {
            monitor.stop(reason: "vigild shutting down")
        }
    }

    /// The monitors in configuration order.
    var all: [TargetMonitor] {
        let (names, byName) = (order.withLockedValue { $0 }, monitors.withLockedValue { $0 })
        return names.compactMap { byName[$0] }
    }

    /// Every target as the status API shows it, in configuration order.
    public func reports() -> [TargetReport] {
        all.map { $0.report() }
    }
}
