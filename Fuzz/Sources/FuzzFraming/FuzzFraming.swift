import NIOCore
import NIOEmbedded
import NIOWebSocket
import VigilFraming
import VigilSupervisor

/// Feeds the input, split at a few points, through NIO's decoder (wrapped by the stream decoder)
/// into the message assembler and the supervisor, then ends the stream. Checks: no crash, no
/// hang, and at most one close record however the bytes fall.
final class Driver: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame

    var assembler = WebSocketMessageAssembler(role: .server, limits: FramingLimits(maxFrameSize: 4096, maxMessageSize: 16384))
    var supervisor = ConnectionSupervisor(
        policy: SupervisionPolicy(pingInterval: .milliseconds(10), pongTimeout: .milliseconds(10), readDeadline: .milliseconds(50)),
        openedAt: MonotonicInstant(nanoseconds: 0))
    var now = MonotonicInstant(nanoseconds: 0)
    var records = 0

    func apply(_ event: SupervisorEvent) {
        now = now + .milliseconds(3)
        let actions = supervisor.handle(event, at: now)
        if actions.record != nil { records += 1 }
        precondition(records <= 1, "more than one close record")
        if actions.closeTransport { precondition(supervisor.phase == .closed) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            switch try assembler.receive(unwrapInboundIn(data)) {
            case .message(let message):
                if message.kind == .text {
                    precondition(String(validating: message.data.readableBytesView, as: UTF8.self) != nil)
                }
                apply(.frameReceived)
            case .fragment, .ping:
                apply(.frameReceived)
            case .pong(let payload):
                apply(.pongReceived(PingPayload(bytes: payload.readableBytesView)))
            case .close(let payload):
                if let code = payload.code { precondition(CloseCode.isValidOnWire(code)) }
                apply(.closeReceived(code: payload.code, reason: payload.reason))
            }
        } catch {
            apply(.protocolViolation(ProtocolViolation(
                cause: error.kind == .invalidUTF8 ? .invalidUTF8 : error.kind == .messageTooBig ? .messageTooBig : .protocolError,
                detail: error.detail, aftermath: error.inCloseFrame ? .peerAlreadyClosing : .awaitReply)))
        }
        apply(.timerFired)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let framing = WebSocketPipeline.framingError(from: error) {
            apply(.protocolViolation(ProtocolViolation(
                cause: framing.kind == .messageTooBig ? .messageTooBig : .protocolError, detail: framing.detail,
                aftermath: .framingLost)))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let ended = event as? WebSocketInputEnded { apply(.inputEnded(midFrame: ended.midFrame)) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFraming(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let channel = EmbeddedChannel()
    let driver = Driver()
    do {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: 4096)))
        try channel.pipeline.syncOperations.addHandler(driver)
        // Deliver in three chunks, cut where the first two bytes say, to exercise partial frames.
        let cuts = bytes.count >= 2 ? [Int(bytes[0]) % (bytes.count + 1), Int(bytes[1]) % (bytes.count + 1)].sorted() : [0, 0]
        for (from, to) in [(0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], bytes.count)] where from < to {
            do {
                try channel.writeInbound(ByteBuffer(bytes: bytes[from..<to]))
            } catch {
                break  // a decoder error: reported through errorCaught above
            }
        }
        channel.pipeline.fireChannelInactive()
        driver.apply(.transportClosed)
        precondition(driver.records == 1, "a connection that ended has exactly one record")
    } catch {
        preconditionFailure("pipeline setup failed: \(error)")
    }
    _ = try? channel.finish()
    return 0
}
