import Logging
import NIOCore
import NIOConcurrencyHelpers
import VigilConfig
import VigilConnection
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// What every connection of one server shares: settings, registry, logger and the directory of
/// channels that shutdown and reload reach.
final class ServerContext: Sendable {
    let settings: VigilSettings
    let registry: ConnectionRegistry
    let logger: Logger
    let channels = ChannelDirectory()
    /// What the connections' supervisors and timer wheels read the time from.
    let clock: ConnectionClock
    let wheels: TimerWheels
    let route: WebSocketRoute
    let limits: FramingLimits
    /// The rules for new connections (a reload replaces the timers).
    let policy: NIOLockedValueBox<SupervisionPolicy>
    /// Which pages' WebSockets are admitted (a reload replaces it).
    let origins: NIOLockedValueBox<OriginPolicy>
    /// Which accepted connections may go on to their handshake.
    let gate: AcceptGate
    /// Refused and timed-out handshakes are logged one by one, up to this budget.
    let handshakeLog = RateLimitedLog(perSecond: 20, what: "rejected or timed-out handshakes")
    /// Faults switched on by a test (none otherwise).
    let failpoints: Failpoints
    /// Proxy mode's rules for new pairs (a reload replaces them); `nil` in the other modes.
    private let proxy: NIOLockedValueBox<ProxyRules?>

    init(
        settings: VigilSettings, registry: ConnectionRegistry, logger: Logger, proxy: ProxyRules?, descriptorBudget: Int?,
        clock: ConnectionClock, failpoints: Failpoints = .none
    ) {
        self.settings = settings
        self.failpoints = failpoints
        self.clock = clock
        self.wheels = TimerWheels(clock: clock)
        self.gate = AcceptGate(settings: settings, descriptorBudget: descriptorBudget)
        self.registry = registry
        self.logger = logger
        self.route = WebSocketRoute(path: settings.mode == .proxy ? nil : settings.path)
        self.limits = FramingLimits(maxFrameSize: settings.maxFrame, maxMessageSize: settings.maxMessage)
        self.policy = NIOLockedValueBox(settings.supervisionPolicy)
        self.proxy = NIOLockedValueBox(proxy)
        self.origins = NIOLockedValueBox(OriginPolicy(settings: settings))
    }

    func proxyRules() -> ProxyRules? { proxy.withLockedValue { $0 } }

    func replaceProxyRules(_ rules: ProxyRules?) { proxy.withLockedValue { $0 = rules } }
}

/// Every WebSocket channel vigild has open — accepted (upgraded or not), in proxy mode the
/// upstream legs it dialed, and the monitor targets' connections — so shutdown and reload can
/// reach them. Touched on open and on
/// close only, never per message.
final class ChannelDirectory: Sendable {
    /// Which timers a channel is supervised by.
    enum Kind: Sendable {
        case accepted
        case upstream
        /// A monitor target's connection, supervised by that target's heartbeat.
        case target(MonitorTarget)
    }

    private let channels = NIOLockedValueBox<[ObjectIdentifier: (channel: any Channel, kind: Kind)]>([:])

    func add(_ channel: any Channel, kind: Kind = .accepted) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = (channel, kind) }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    var count: Int { channels.withLockedValue { $0.count } }

    var all: [any Channel] { channels.withLockedValue { $0.values.map(\.channel) } }

    /// Fires `event(kind)` into every channel's pipeline, on its own event loop; a channel for
    /// which it returns `nil` is skipped.
    func broadcast(_ event: (Kind) -> (any Sendable)?) {
        for (channel, kind) in channels.withLockedValue({ Array($0.values) }) {
            guard let value = event(kind) else { continue }
            channel.pipeline.fireUserInboundEventTriggered(value)
        }
    }

    /// Fires `event` into every channel's pipeline, on its own event loop.
    func broadcast(_ event: some Sendable) {
        broadcast { _ in event }
    }
}
