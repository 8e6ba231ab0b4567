import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import VigilFraming

/// A WebSocket client on vigil's framing core: used by the pipeline tests and the load
/// generator. Events arrive on `events`; sends are masked frames.
public final class WebSocketClient: Sendable {
    public let channel: any Channel
    public let events: AsyncStream<WebSocketClientEvent>

    private init(channel: any Channel, events: AsyncStream<WebSocketClientEvent>) {
        self.channel = channel
        self.events = events
    }

    /// Connects and completes the handshake for `target` (path and query, e.g. `/ws?client=a`).
    public static func connect(
        host: String, port: Int, target: String = "/ws", options: WebSocketClientOptions = .init(),
        group: any EventLoopGroup
    ) async throws -> WebSocketClient {
        let (events, continuation) = AsyncStream.makeStream(of: WebSocketClientEvent.self)
        let upgraded = group.next().makePromise(of: Void.self)
        let key = NIOWebSocketClientUpgrader.randomRequestKey()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = HandshakeResponseDecoder(
                        keyChecker: NIOWebSocketClientUpgrader(
                            requestKey: key,
                            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }),
                        installFraming: { context in
                            let pipeline = context.pipeline.syncOperations
                            let connection = ClientConnectionHandler(options: options, continuation: continuation)
                            try pipeline.addHandler(connection)
                            try pipeline.addHandler(
                                ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: options.limits.maxFrameSize)),
                                position: .before(connection))
                            try pipeline.addHandler(WebSocketFrameEncoder(), position: .before(connection))
                            upgraded.succeed()
                        },
                        fail: { upgraded.fail($0) })
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
                }
            }
            .connect(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in
            // After a completed upgrade the connection handler ends the stream itself, once it
            // has reported every frame that arrived before the close.
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
        return WebSocketClient(channel: channel, events: events)
    }

    // MARK: - Sending

    public func send(text: String) async throws {
        try await send(frame: ClientFrames.frame(.text, channel.allocator.buffer(string: text)))
    }

    public func send(binary: [UInt8]) async throws {
        try await send(frame: ClientFrames.frame(.binary, channel.allocator.buffer(bytes: binary)))
    }

    public func ping(_ payload: [UInt8]) async throws {
        try await send(frame: ClientFrames.frame(.ping, channel.allocator.buffer(bytes: payload)))
    }

    /// Sends a close frame (`code == nil`: an empty one). The server answers and closes TCP.
    public func close(code: UInt16?, reason: String = "") async throws {
        let payload = ClosePayload(code: code, reason: reason).encode(allocator: channel.allocator)
        try await channel.eventLoop.submit { [channel] in
            try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self).noteSentClose()
        }.get()
        try await send(frame: ClientFrames.frame(.connectionClose, payload))
    }

    /// Sends any frame, including ones a well-behaved client never would (tests build those).
    public func send(frame: WebSocketFrame) async throws {
        try await channel.writeAndFlush(frame)
    }

    /// Writes bytes straight to the socket, below the frame encoder (for truncated or malformed frames).
    public func send(rawBytes: [UInt8]) async throws {
        let buffer = channel.allocator.buffer(bytes: rawBytes)
        try await channel.eventLoop.flatSubmit { [channel] in
            do {
                let encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
                return encoder.writeAndFlush(NIOAny(buffer))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }

    // MARK: - Transport

    /// Closes TCP without a close frame (the server sees FIN).
    public func closeTransport() async {
        try? await channel.close()
    }

    /// Closes TCP with an RST (SO_LINGER 0), as a crashed or reset peer would.
    public func reset() async {
        if let socket = channel as? any SocketOptionProvider {
            try? await socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        try? await channel.close()
    }

    /// Stops (or resumes) reading from the socket, to play a peer whose receive buffer fills.
    public func setReading(_ enabled: Bool) async throws {
        try await channel.setOption(.autoRead, value: enabled).get()
    }
}
