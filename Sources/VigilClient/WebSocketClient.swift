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
        let hostHeader = "\(host):\(port)"
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = WebSocketClientUpgrader(
                        options: options, continuation: continuation, upgraded: upgraded)
                    // Frames the server sends right behind its 101 must reach the framing core.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(
                        HandshakeRequester(target: target, host: hostHeader, upgraded: upgraded))
                }
            }
            .connect(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in
            upgraded.fail(WebSocketClientError.closedDuringHandshake)
            continuation.finish()
        }
        do {
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

/// Sends the upgrade request once the connection is up; fails the handshake on refusal.
private final class HandshakeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let target: String
    private let host: String
    private let upgraded: EventLoopPromise<Void>

    init(target: String, host: String, upgraded: EventLoopPromise<Void>) {
        self.target = target
        self.host = host
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A response reaching us means no upgrade happened.
        upgraded.fail(WebSocketClientError.upgradeRefused)
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        upgraded.fail(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HandshakeRequester: Sendable {}

/// NIO's client upgrader adds the key and checks the accept value; the pipeline after the
/// upgrade is vigil's framing core with the client handler.
private final class WebSocketClientUpgrader: NIOHTTPClientProtocolUpgrader {
    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []

    private let nio: NIOWebSocketClientUpgrader
    private let options: WebSocketClientOptions
    private let continuation: AsyncStream<WebSocketClientEvent>.Continuation
    private let upgraded: EventLoopPromise<Void>

    init(options: WebSocketClientOptions, continuation: AsyncStream<WebSocketClientEvent>.Continuation, upgraded: EventLoopPromise<Void>) {
        self.nio = NIOWebSocketClientUpgrader(upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
        self.options = options
        self.continuation = continuation
        self.upgraded = upgraded
    }

    func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {
        nio.addCustom(upgradeRequestHeaders: &upgradeRequestHeaders)
    }

    func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool {
        nio.shouldAllowUpgrade(upgradeResponse: upgradeResponse)
    }

    func upgrade(context: ChannelHandlerContext, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        return context.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            if let requester = try? pipeline.handler(type: HandshakeRequester.self) {
                pipeline.removeHandler(requester, promise: nil)
            }
            try WebSocketPipeline.addFramingHandlers(to: pipeline, limits: options.limits)
            try pipeline.addHandler(ClientConnectionHandler(options: options, continuation: continuation))
            upgraded.succeed()
        }
    }
}

@available(*, unavailable)
extension WebSocketClientUpgrader: Sendable {}
