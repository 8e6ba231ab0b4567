import Logging
import NIOConcurrencyHelpers
import VigilConnection
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// What every connection vigild holds shares, whichever part of vigild made it (the listener,
/// the proxy's upstream dial, a monitor target): the registry and the log, the clock and timer
/// wheels connections are supervised by, the directory shutdown and reload reach them through,
/// and `openBooks`, the one way a connection gets its registry entry, logger and observer.
public final class ConnectionHost: Sendable {
    public let registry: ConnectionRegistry
    /// vigild's logger; each connection's adds its identity (`openBooks`).
    public let logger: Logger
    /// What connections are stamped and timed by: the system's, or an `EmbeddedEventLoop`'s
    /// where a test or fuzz target drives time.
    public let clock: ConnectionClock
    public let wheels: TimerWheels
    public let channels = ChannelDirectory()
    /// The zlib streams each event loop shares among its connections (permessage-deflate).
    public let deflateStreams = DeflateStreams()
    /// `max_frame` and `max_message`.
    public let limits: FramingLimits
    private let currentPolicy: NIOLockedValueBox<SupervisionPolicy>

    public init(
        registry: ConnectionRegistry, logger: Logger, clock: ConnectionClock, limits: FramingLimits,
        policy: SupervisionPolicy
    ) {
        self.registry = registry
        self.logger = logger
        self.clock = clock
        self.wheels = TimerWheels(clock: clock)
        self.limits = limits
        self.currentPolicy = NIOLockedValueBox(policy)
    }

    /// The heartbeat and deadlines for new inbound connections (a reload replaces them).
    public var policy: SupervisionPolicy {
        get { currentPolicy.withLockedValue { $0 } }
        set { currentPolicy.withLockedValue { $0 = newValue } }
    }

    /// Opens a connection's books: its registry entry, a logger carrying its id and identity,
    /// and the observer that keeps its counters and, at the end, stores its one close record
    /// and writes its one close line.
    public func openBooks(_ identity: ConnectionIdentity, at now: MonotonicInstant) -> ConnectionBooks {
        let connection = registry.open(identity, at: now)
        var logger = self.logger
        logger[metadataKey: LogKey.connectionID] = "\(connection.id)"
        for (key, value) in identity.everyLineLogFields { logger[metadataKey: key] = "\(value)" }
        return ConnectionBooks(
            connection: connection, logger: logger,
            observer: RegistryObserver(connection: connection, registry: registry, logger: logger))
    }
}

/// One connection's entry, logger and observer (`ConnectionHost.openBooks`).
public struct ConnectionBooks {
    public let connection: LiveConnection
    public let logger: Logger
    public let observer: RegistryObserver
}
