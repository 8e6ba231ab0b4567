import Logging
import NIOCore
import NIOWebSocket
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// The thin shell around one upgraded connection: it turns channel events into supervisor
/// events, carries out the supervisor's actions, answers messages, and keeps one timer set at
/// the supervisor's next deadline on its event loop's `TimerWheel` (no thread or task per
/// connection; the timer is reset only when a deadline moves earlier).
final class SupervisedConnectionHandler: ChannelInboundHandler, WheelTimerTarget {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var supervisor: ConnectionSupervisor
    private var assembler: WebSocketMessageAssembler
    private let connection: LiveConnection
    private let registry: ConnectionRegistry
    private let responder: MessageResponder
    private let maxBacklog: Int
    private let logger: Logger

    private let wheel: TimerWheel
    /// The deadline the wheel will call back at, and the token that call carries.
    private var timerDeadline: MonotonicInstant?
    private var timerToken: UInt64 = 0
    /// Valid between handlerAdded and handlerRemoved; the wheel's callback needs it.
    private var context: ChannelHandlerContext?
    /// Set once the frame decoder failed: later "data received in error state" errors are noise.
    private var framingLost = false
    /// Whether frames were written since the last flush.
    private var pendingFlush = false

    init(
        connection: LiveConnection, registry: ConnectionRegistry, policy: SupervisionPolicy, limits: FramingLimits,
        responder: MessageResponder, maxBacklog: Int, logger: Logger, openedAt: MonotonicInstant, wheel: TimerWheel
    ) {
        self.wheel = wheel
        self.supervisor = ConnectionSupervisor(policy: policy, openedAt: openedAt)
        self.assembler = WebSocketMessageAssembler(role: .server, limits: limits)
        self.connection = connection
        self.registry = registry
        self.responder = responder
        self.maxBacklog = maxBacklog
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        logger.debug("connection opened")
        armTimer(context: context)
        if !context.channel.isActive {
            // Closed before we were added: the supervisor still owes its one record.
            handle(.transportClosed, context: context)
        }
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard supervisor.phase != .closed else { return }
        let now = ServerClock.now()
        connection.noteSeen(at: now)
        let inbound: WebSocketInbound
        do {
            inbound = try assembler.receive(frame)
        } catch {
            violation(error, context: context, at: now)
            return
        }
        switch inbound {
        case .message(let message):
            handle(.frameReceived, context: context, at: now)
            connection.noteMessageIn(bytes: message.data.readableBytes)
            guard supervisor.isOpen, let reply = responder.reply(to: message, allocator: context.channel.allocator) else {
                return
            }
            let opcode: WebSocketOpcode = reply.kind == .text ? .text : .binary
            write(WebSocketFrame(fin: true, opcode: opcode, data: reply.data), context: context)
            connection.noteMessageOut(bytes: reply.data.readableBytes)
        case .fragment:
            handle(.frameReceived, context: context, at: now)
        case .ping(let payload):
            handle(.frameReceived, context: context, at: now)
            if supervisor.isOpen {
                write(WebSocketFrame(fin: true, opcode: .pong, data: payload), context: context)
            }
        case .pong(let payload):
            let actions = supervisor.handle(.pongReceived(PingPayload(bytes: payload.readableBytesView)), at: now)
            connection.notePongReceived(roundTrip: actions.roundTrip)
            perform(actions, context: context)
        case .close(let payload):
            handle(.closeReceived(code: payload.code, reason: payload.reason), context: context, at: now)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushAndCheckBacklog(context: context)
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let framingError = WebSocketPipeline.framingError(from: error) {
            framingLost = true
            violation(framingError, context: context, at: ServerClock.now())
        } else if error is ByteToMessageDecoderError, framingLost {
            return  // the peer kept sending after its framing broke; already being closed
        } else {
            if supervisor.phase != .closed {
                logger.debug("transport error", metadata: ["error": "\(error)"])
            }
            handle(.transportFailed, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let ended as WebSocketInputEnded:
            handle(.inputEnded(midFrame: ended.midFrame), context: context)
        case is ShutdownRequested:
            handle(.shutdownRequested, context: context)
        case let change as PolicyChanged:
            supervisor.update(policy: change.policy)
            armTimer(context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handle(.transportClosed, context: context)
        disarmTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarmTimer()
        self.context = nil
    }

    func wheelTimerFired(token: UInt64) {
        guard token == timerToken, let context else { return }  // replaced, or the connection is gone
        timerDeadline = nil
        handle(.timerFired, context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable { checkBacklog(context: context) }
        context.fireChannelWritabilityChanged()
    }

    // MARK: - Supervisor plumbing

    private func violation(_ error: FramingError, context: ChannelHandlerContext, at now: MonotonicInstant) {
        let cause: CloseCause =
            switch error.kind {
            case .protocolError: .protocolError
            case .invalidUTF8: .invalidUTF8
            case .messageTooBig: .messageTooBig
            }
        logger.debug("protocol violation", metadata: ["detail": "\(error.detail)", "code": "\(error.closeCode)"])
        handle(
            .protocolViolation(
                ProtocolViolation(
                    cause: cause, detail: error.detail,
                    aftermath: error.inCloseFrame ? .peerAlreadyClosing : error.framingIntact ? .awaitReply : .framingLost)),
            context: context, at: now)
    }

    private func handle(_ event: SupervisorEvent, context: ChannelHandlerContext, at now: MonotonicInstant = ServerClock.now()) {
        perform(supervisor.handle(event, at: now), context: context)
    }

    private func perform(_ actions: SupervisorActions, context: ChannelHandlerContext) {
        if let ping = actions.sendPing {
            var payload = context.channel.allocator.buffer(capacity: 8)
            payload.writeBytes(ping.bytes)
            write(WebSocketFrame(fin: true, opcode: .ping, data: payload), context: context)
            connection.notePingSent()
        }
        if let close = actions.sendClose {
            let payload = ClosePayload(code: close.code, reason: close.reason).encode(allocator: context.channel.allocator)
            write(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload), context: context)
        }
        if actions.sendPing != nil || actions.sendClose != nil {
            flushAndCheckBacklog(context: context)
        }
        if let roundTrip = actions.roundTrip {
            registry.noteRoundTrip(roundTrip)
        }
        if let outcome = actions.record {
            let record = registry.close(connection, outcome: outcome, at: ServerClock.now())
            CloseLogging.log(record, to: logger)
        }
        if actions.closeTransport {
            disarmTimer()
            context.close(promise: nil)
        } else {
            armTimer(context: context)
        }
    }

    private func write(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(frame), promise: nil)
        pendingFlush = true
    }

    private func flushAndCheckBacklog(context: ChannelHandlerContext) {
        guard pendingFlush else { return }
        pendingFlush = false
        context.flush()
        checkBacklog(context: context)
    }

    /// The backlog is what the kernel would not take after a flush; over the limit the peer is
    /// not reading fast enough and the connection is closed as a slow consumer.
    private func checkBacklog(context: ChannelHandlerContext) {
        guard !context.channel.isWritable, supervisor.phase != .closed,
            let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes),
            buffered > maxBacklog
        else { return }
        logger.debug("outbound backlog over the limit", metadata: ["buffered_bytes": "\(buffered)", "max_backlog": "\(maxBacklog)"])
        handle(.backlogExceeded, context: context)
    }

    /// Keeps one timer set at the supervisor's next deadline, resetting it only when that
    /// deadline is earlier than the one set (a later deadline is found when the early timer fires).
    private func armTimer(context: ChannelHandlerContext) {
        guard let deadline = supervisor.nextDeadline else {
            disarmTimer()
            return
        }
        if let armed = timerDeadline, armed <= deadline { return }
        timerToken &+= 1
        timerDeadline = deadline
        wheel.schedule(self, token: timerToken, at: deadline)
    }

    /// Makes any callback already in the wheel a no-op.
    private func disarmTimer() {
        timerToken &+= 1
        timerDeadline = nil
    }
}

@available(*, unavailable)
extension SupervisedConnectionHandler: Sendable {}
