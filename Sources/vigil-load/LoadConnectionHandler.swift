import NIOCore
import NIOWebSocket
import VigilClient
import VigilFraming

/// Starts a connection's echo loop (one message in flight; the next goes when the echo returns).
struct StartEcho: Sendable {
    var messageSize: Int
}

/// Sends a close frame (1000); the server answers and closes TCP.
struct CloseNormally: Sendable {}

/// One load connection: answers pings (unless told not to), runs an echo loop on demand, and
/// counts what the server does to it. Lean on purpose: thousands of these share a process.
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let stats: LoadStats
    private let answerPings: Bool
    private var assembler: WebSocketMessageAssembler
    private var firstUnansweredPing: NIODeadline?
    private var sawClose = false
    private var sentClose = false
    private var message: ByteBuffer?
    private var sentAt: NIODeadline?

    init(stats: LoadStats, answerPings: Bool, limits: FramingLimits) {
        self.stats = stats
        self.answerPings = answerPings
        self.assembler = WebSocketMessageAssembler(role: .client, limits: limits)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        stats.open.add(1, ordering: .relaxed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let inbound: WebSocketInbound
        do {
            inbound = try assembler.receive(unwrapInboundIn(data))
        } catch {
            context.close(promise: nil)
            return
        }
        switch inbound {
        case .ping(let payload):
            stats.pings.add(1, ordering: .relaxed)
            if answerPings {
                context.writeAndFlush(wrapOutboundOut(ClientFrames.frame(.pong, payload)), promise: nil)
                stats.pongsSent.add(1, ordering: .relaxed)
            } else if firstUnansweredPing == nil {
                firstUnansweredPing = .now()
            }
        case .message:
            guard let sentAt else { return }
            let microseconds = (NIODeadline.now() - sentAt).nanoseconds / 1000
            stats.latency.withLockedValue { _ = $0.record(UInt64(max(microseconds, 0))) }
            stats.echoes.add(1, ordering: .relaxed)
            self.sentAt = nil
            if stats.echoing.load(ordering: .relaxed) { sendMessage(context: context) }
        case .close(let payload):
            sawClose = true
            stats.noteClose(code: payload.code)
            if !sentClose {
                noteDetection()  // the server ended it: for a peer that stopped ponging, that is detection
                sentClose = true
                let reply = ClosePayload(code: payload.code).encode(allocator: context.channel.allocator)
                context.writeAndFlush(wrapOutboundOut(ClientFrames.frame(.connectionClose, reply)), promise: nil)
            }
        case .pong, .fragment:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let start as StartEcho:
            message = context.channel.allocator.buffer(repeating: 0x78, count: start.messageSize)
            sendMessage(context: context)
        case is CloseNormally:
            guard !sentClose else { return }
            sentClose = true
            let payload = ClosePayload(code: 1000).encode(allocator: context.channel.allocator)
            context.writeAndFlush(wrapOutboundOut(ClientFrames.frame(.connectionClose, payload)), promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stats.open.add(-1, ordering: .relaxed)
        if !sawClose && !sentClose {
            stats.dropped.add(1, ordering: .relaxed)
            noteDetection()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func sendMessage(context: ChannelHandlerContext) {
        guard let message else { return }
        sentAt = .now()
        context.writeAndFlush(wrapOutboundOut(ClientFrames.frame(.binary, message)), promise: nil)
    }

    private func noteDetection() {
        guard let first = firstUnansweredPing else { return }
        firstUnansweredPing = nil
        let microseconds = (NIODeadline.now() - first).nanoseconds / 1000
        stats.detection.withLockedValue { _ = $0.record(UInt64(max(microseconds, 0))) }
    }
}

@available(*, unavailable)
extension LoadConnectionHandler: Sendable {}
