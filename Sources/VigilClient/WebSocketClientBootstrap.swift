import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import VigilFraming

/// Opens a client WebSocket connection on vigil's framing core and ends its pipeline with a
/// handler of the caller's: `WebSocketClient` puts an event stream there, the load generator a
/// lean per-connection handler.
public enum WebSocketClientBootstrap {
    /// Connects, completes the handshake for `target` (path and query, e.g. `/ws?client=a`) and
    /// installs NIO's frame encoder, the stream decoder and `makeHandler()`'s handler, all in the
    /// read that completed the handshake (see `HandshakeResponseDecoder`).
    ///
    /// - Parameters:
    ///   - localAddress: the source address to bind to, to spread many connections over several
    ///     loopback addresses (each has its own ephemeral ports).
    ///   - makeHandler: called on the channel's event loop; receives `WebSocketFrame`s.
    public static func connect(
        host: String, port: Int, target: String, localAddress: SocketAddress? = nil, limits: FramingLimits,
        group: any EventLoopGroup, makeHandler: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        let upgraded = group.next().makePromise(of: Void.self)
        let key = NIOWebSocketClientUpgrader.randomRequestKey()
        var bootstrap = ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = HandshakeResponseDecoder(
                        keyChecker: NIOWebSocketClientUpgrader(
                            requestKey: key,
                            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }),
                        installFraming: { context in
                            let pipeline = context.pipeline.syncOperations
                            let handler = makeHandler()
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
            // After a completed upgrade the final handler sees the close itself.
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
