import NIOCore
import NIOPosix
import NIOWebSocket
import VigilConnection
import VigilFraming
import VigilSupervisor

/// A WebSocket client program's connection, supervised like any of vigild's: used by the
/// pipeline tests. Events arrive on `events`; messages and closes go through the shell, which
/// masks them; `send(frame:)` and `send(rawBytes:)` write anything at all (tests build bad
/// frames with them).
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
            host: host, port: port, target: target, configuration: options.configuration, group: group,
            makeParts: {
                let recorder = ClientEventRecorder(continuation: continuation)
                return (recorder, recorder)
            })
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        return WebSocketClient(channel: channel, events: events)
    }

    // MARK: - Through the supervised shell

    public func send(text: String) async throws {
        try await send(WebSocketMessage(kind: .text, data: channel.allocator.buffer(string: text)))
    }

    public func send(binary: [UInt8]) async throws {
        try await send(WebSocketMessage(kind: .binary, data: channel.allocator.buffer(bytes: binary)))
    }

    /// Returns once the kernel has taken the message.
    public func send(_ message: WebSocketMessage) async throws {
        try await onShell { shell, promise in shell.send(message, promise: promise) }
    }

    /// Starts the close handshake (`code == nil`: an empty close frame). The server answers
    /// and closes TCP; the client's record says `initiator: .local`.
    public func close(code: UInt16?, reason: String = "") async throws {
        let close = LocalClose(code: code, reason: reason, cause: .shutdown)
        try await onShell { shell, promise in
            shell.close(close)
            promise.succeed()
        }
    }

    private func onShell(_ body: @escaping @Sendable (SupervisedConnectionHandler, EventLoopPromise<Void>) -> Void)
        async throws
    {
        let channel = self.channel
        try await channel.eventLoop.flatSubmit {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            do {
                body(try channel.pipeline.syncOperations.handler(type: SupervisedConnectionHandler.self), promise)
            } catch {
                promise.fail(error)
            }
            return promise.futureResult
        }.get()
    }

    // MARK: - Around it

    /// A ping of the client's own (the shell answers the server's pings itself).
    public func ping(_ payload: [UInt8]) async throws {
        try await send(
            frame: WebSocketFrame(
                fin: true, opcode: .ping, maskKey: .random(), data: channel.allocator.buffer(bytes: payload)))
    }

    /// Sends any frame as it is, including ones a well-behaved client never would.
    public func send(frame: WebSocketFrame) async throws {
        try await channel.writeAndFlush(frame)
    }

    /// Writes bytes straight to the socket, below the framing core (for truncated or malformed frames).
    public func send(rawBytes: [UInt8]) async throws {
        let buffer = channel.allocator.buffer(bytes: rawBytes)
        try await channel.eventLoop.flatSubmit { [channel] in
            do {
                let below = try WebSocketPipeline.rawWriter(in: channel.pipeline.syncOperations)
                return below.writeAndFlush(NIOAny(buffer))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }

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
