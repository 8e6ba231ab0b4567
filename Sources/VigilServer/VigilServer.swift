import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import VigilConfig
import VigilRegistry
import VigilSupervisor

/// vigild's server: the WebSocket listener with supervised connections and the status API
/// listener, sharing one registry. A `Service`, so swift-service-lifecycle runs it and turns
/// SIGTERM/SIGINT into a graceful drain.
public final class VigilServer: Service, Sendable {
    public let configuration: ResolvedSettings
    public let registry: ConnectionRegistry
    private let server: ServerContext
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let logger: Logger
    private let startedAt: MonotonicInstant
    private let phase = Atomic<UInt8>(ServerPhase.starting.rawValue)
    private let listeners = Mutex<(webSocket: (any Channel)?, status: (any Channel)?)>((nil, nil))
    private let stopped = Mutex<Bool>(false)

    /// - Parameters:
    ///   - group: event loops to run on; by default one per core, owned and shut down by the server.
    public init(configuration: ResolvedSettings, logger: Logger, group: (any EventLoopGroup)? = nil) {
        let now = ServerClock.now()
        let settings = configuration.settings
        self.configuration = configuration
        self.registry = ConnectionRegistry(
            maxConnections: settings.maxConnections, closeHistory: settings.closeHistory, now: now)
        self.server = ServerContext(settings: settings, registry: registry, logger: logger)
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.ownsGroup = group == nil
        self.logger = logger
        self.startedAt = now
    }

    /// Where the listeners are bound (the real ports when port 0 was configured).
    public var webSocketAddress: SocketAddress? { listeners.withLock { $0.webSocket?.localAddress } }
    public var statusAddress: SocketAddress? { listeners.withLock { $0.status?.localAddress } }

    /// Binds both listeners; the server is ready (and `/readyz` says so) when this returns.
    public func start() async throws {
        let settings = server.settings
        let status = try await bind(statusBootstrap(), settings.statusListen, what: "status API listener")
        listeners.withLock { $0.status = status }
        let webSocket: any Channel
        do {
            webSocket = try await bind(webSocketBootstrap(), settings.listen, what: "WebSocket listener")
        } catch {
            try? await status.close()
            throw error
        }
        listeners.withLock { $0.webSocket = webSocket }
        phase.store(ServerPhase.ready.rawValue, ordering: .releasing)
        let wsURL = "ws://\(webSocket.localAddress?.endpointDescription ?? "?")\(settings.path)"
        let statusURL = "http://\(status.localAddress?.endpointDescription ?? "?")"
        logger.notice(
            "vigild ready ws=\(wsURL) status=\(statusURL)",
            metadata: ["mode": "\(settings.mode.rawValue)"])
    }

    /// Runs until graceful shutdown (SIGTERM/SIGINT under a ServiceGroup), then drains.
    public func run() async throws {
        if phase.load(ordering: .acquiring) == ServerPhase.starting.rawValue {
            try await start()
        }
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, sends 1001 to every connection, waits up to the close timeout (plus a
    /// second) for the close handshakes, closes what remains, then stops the listeners.
    /// Every connection's close is recorded before this returns.
    public func shutdown() async {
        let alreadyStopped = stopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        guard !alreadyStopped else { return }
        phase.store(ServerPhase.draining.rawValue, ordering: .releasing)
        let (webSocket, status) = listeners.withLock { $0 }
        try? await webSocket?.close()
        let open = server.channels.count
        logger.notice("shutting down: closing \(open) connections with 1001", metadata: ["connections": "\(open)"])
        server.channels.broadcast(ShutdownRequested())
        let drainLimit = ContinuousClock.now + server.settings.closeTimeout + .seconds(1)
        while server.channels.count > 0 && ContinuousClock.now < drainLimit {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for channel in server.channels.all {
            try? await channel.close()
        }
        try? await status?.close()
        let summary = registry.summary(at: ServerClock.now())
        logger.notice("stopped", metadata: ["closes_total": "\(summary.total)"])
        if ownsGroup {
            try? await group.shutdownGracefully()
        }
    }

    /// New timing rules for live and future connections (configuration reload).
    public func apply(policy: SupervisionPolicy) {
        server.policy.withLock { $0 = policy }
        server.channels.broadcast(PolicyChanged(policy: policy))
    }

    // MARK: - Bootstraps

    private func webSocketBootstrap() -> ServerBootstrap {
        let server = self.server
        let maxBacklog = server.settings.maxBacklog
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: maxBacklog / 2, high: maxBacklog))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    server.channels.add(channel)
                    var logger = server.logger
                    logger[metadataKey: "peer"] = "\(channel.remoteAddress?.endpointDescription ?? "unknown")"
                    let handshake = HandshakeHandler(server: server, logger: logger)
                    let upgrader = WebSocketUpgrader(server: server, handshake: handshake)
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
                        withErrorHandling: true)
                    try pipeline.addHandler(handshake)
                }
            }
    }

    private func statusBootstrap() -> ServerBootstrap {
        let router = StatusRouter(
            registry: registry, configuration: configuration, startedAt: startedAt,
            phase: { [self] in ServerPhase(rawValue: phase.load(ordering: .acquiring)) ?? .starting })
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(StatusHTTPHandler(router: router))
                }
            }
    }

    private func bind(_ bootstrap: ServerBootstrap, _ address: ListenAddress, what: String) async throws -> any Channel {
        do {
            return try await bootstrap.bind(host: address.host, port: address.port).get()
        } catch {
            throw StartupError(message: "cannot bind the \(what) to \(address): \(error)")
        }
    }
}

/// A start-up failure worded for the operator.
public struct StartupError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
