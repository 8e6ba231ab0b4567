import NIOCore
import NIOWebSocket
import VigilFraming

/// The client side's handler after the upgrade: assembles messages with the shared framing
/// core (role `.client`), answers pings and close frames if asked to, and reports everything.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var assembler: WebSocketMessageAssembler
    private let options: WebSocketClientOptions
    private let continuation: AsyncStream<WebSocketClientEvent>.Continuation
    private var sentClose = false

    init(options: WebSocketClientOptions, continuation: AsyncStream<WebSocketClientEvent>.Continuation) {
        self.assembler = WebSocketMessageAssembler(role: .client, limits: options.limits)
        self.options = options
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let inbound: WebSocketInbound
        do {
            inbound = try assembler.receive(unwrapInboundIn(data))
        } catch {
            continuation.yield(.violation(error))
            return
        }
        switch inbound {
        case .message(let message):
            switch message.kind {
            case .text: continuation.yield(.text(String(decoding: message.data.readableBytesView, as: UTF8.self)))
            case .binary: continuation.yield(.binary(Array(message.data.readableBytesView)))
            }
        case .fragment:
            break
        case .ping(let payload):
            continuation.yield(.ping(Array(payload.readableBytesView)))
            if options.answerPings {
                context.writeAndFlush(wrapOutboundOut(ClientFrames.frame(.pong, payload)), promise: nil)
            }
        case .pong(let payload):
            continuation.yield(.pong(Array(payload.readableBytesView)))
        case .close(let payload):
            continuation.yield(.close(code: payload.code, reason: payload.reason))
            if options.answerClose && !sentClose {
                sentClose = true
                let reply = ClosePayload(code: payload.code).encode(allocator: context.channel.allocator)
                context.writeAndFlush(wrapOutboundOut(ClientFrames.frame(.connectionClose, reply)), promise: nil)
            }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let ended = event as? WebSocketInputEnded {
            continuation.yield(.inputEnded(midFrame: ended.midFrame))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let framing = WebSocketPipeline.framingError(from: error) {
            continuation.yield(.violation(framing))
        } else {
            continuation.yield(.transportError("\(error)"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        context.fireChannelInactive()
    }

    /// Notes that the application sent a close frame (so the server's reply is not answered).
    func noteSentClose() {
        sentClose = true
    }
}

@available(*, unavailable)
extension ClientConnectionHandler: Sendable {}

/// Frames as a client sends them.
public enum ClientFrames {
    /// A masked frame, as RFC 6455 requires of clients.
    public static func frame(_ opcode: WebSocketOpcode, _ data: ByteBuffer, fin: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: opcode, maskKey: .random(), data: data)
    }
}
