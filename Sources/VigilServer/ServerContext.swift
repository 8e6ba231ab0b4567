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
    let wheels = TimerWheels()
    let route: WebSocketRoute
    let limits: FramingLimits
    /// The rules for new connections (a reload replaces the timers).
    let policy: NIOLockedValueBox<SupervisionPolicy>

    init(settings: VigilSettings, registry: ConnectionRegistry, logger: Logger) {
        self.settings = settings
        self.registry = registry
        self.logger = logger
        self.route = WebSocketRoute(path: settings.path)
        self.limits = FramingLimits(maxFrameSize: settings.maxFrame, maxMessageSize: settings.maxMessage)
        self.policy = NIOLockedValueBox(settings.supervisionPolicy)
    }
}

/// Every WebSocket-listener channel that is open, upgraded or not, so shutdown can reach them.
/// Touched on accept and on close only, never per message.
final class ChannelDirectory: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    var count: Int { channels.withLockedValue { $0.count } }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }

    /// Fires `event` into every channel's pipeline, on its own event loop.
    func broadcast(_ event: some Sendable) {
        for channel in all {
            channel.pipeline.fireUserInboundEventTriggered(event)
        }
    }
}
