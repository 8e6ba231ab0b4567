import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import VigilConnection
import VigilFraming
import VigilSupervisor

/// Opens a client-role WebSocket connection on vigil's framing core and supervised shell: the
/// same `SupervisedConnectionHandler` vigild runs for its own connections, here with
/// `role: .client` (masked frames, and after the close handshake the server closes TCP first).
/// `WebSocketClient` gives it an event stream; the load generator its own lean sink.
public enum WebSocketClientBootstrap {
    /// Timer wheels for client connections, one per event loop.
    public static let wheels = TimerWheels()

    /// Connects, completes the handshake for `target` (path and query, e.g. `/ws?client=a`) and
    /// installs NIO's frame encoder, the stream decoder and the supervised shell, all in the
    /// read that completed the handshake (see `HandshakeResponseDecoder`).
    ///
    /// - Parameters:
    ///   - localAddress: the source address to bind to, to spread many connections over several
    ///     loopback addresses (each has its own ephemeral ports).
    ///   - configuration: the shell's rules; `role` must be `.client`. Its `maxBacklog` is the
    ///     channel's high water mark.
    ///   - makeParts: called on the channel's event loop once the upgrade completed: the
    ///     connection's message sink and observer.
    public static func connect(
        host: String, port: Int, target: String, localAddress: SocketAddress? = nil,
        configuration: SupervisedConnectionHandler.Configuration, group: any EventLoopGroup,
        makeParts: @escaping @Sendable () -> (sink: any MessageSink, observer: any ConnectionObserver)
    ) async throws -> any Channel {
        precondition(configuration.role == .client, "a client connection has the client role")
        let upgraded = group.next().makePromise(of: Void.self)
        let key = NIOWebSocketClientUpgrader.randomRequestKey()
        let limits = configuration.limits
        let backlog = configuration.policy.maxBacklog
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.writeBufferWaterMark, value: .init(low: backlog / 2, high: backlog))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = HandshakeResponseDecoder(
                        keyChecker: NIOWebSocketClientUpgrader(
                            requestKey: key,
                            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }),
                        installFraming: { context in
                            let parts = makeParts()
                            let handler = SupervisedConnectionHandler(
                                configuration: configuration, sink: parts.sink, observer: parts.observer,
                                wheel: wheels.wheel(for: context.eventLoop), openedAt: ConnectionClock.system.now())
                            let pipeline = context.pipeline.syncOperations
                            try pipeline.addHandler(handler)
                            try pipeline.addHandler(
                                ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: limits.maxFrameSize)),
                                position: .before(handler))
                            try pipeline.addHandler(WebSocketFrameEncoder(), position: .before(handler))
                            upgraded.succeed()
                        },
                        fail: { upgraded.fail($0) })
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
                }
            }
        if let localAddress {
            bootstrap = bootstrap.bind(to: localAddress)
        }
        let channel = try await bootstrap.connect(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in
            // After a completed upgrade the shell sees the close itself.
            upgraded.fail(WebSocketClientError.closedDuringHandshake)
        }
        var headers = HTTPHeaders([("Host", "\(host):\(port)"), ("Upgrade", "websocket"), ("Connection", "Upgrade")])
        NIOWebSocketClientUpgrader(requestKey: key, upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
            .addCustom(upgradeRequestHeaders: &headers)
        let request = "GET \(target) HTTP/1.1\r\n" + headers.map { "\($0.name): \($0.value)\r\n" }.joined() + "\r\n"
        do {
            try await channel.writeAndFlush(channel.allocator.buffer(string: request))
            try await upgraded.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return channel
    }
}
