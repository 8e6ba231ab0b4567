import NIOCore
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
        let channel = try await WebSocketClientBootstrap.connect(
            host: host, port: port, target: target, limits: options.limits, group: group,
            makeHandler: { ClientConnectionHandler(options: options, continuation: continuation) })
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
