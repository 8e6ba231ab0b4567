import NIOCore
import NIOWebSocket
import VigilFraming
import VigilSupervisor

/// The thin shell around one upgraded WebSocket connection, for either role: it turns channel
/// events into supervisor events, carries out the one action each returns, answers pings and
/// close frames, masks what it sends when it is the client (RFC 6455 §5.3), and keeps one timer
/// set at the supervisor's next deadline on its event loop's `TimerWheel` (no thread or task
/// per connection; the timer is reset only when a deadline moves earlier).
///
/// What happens to messages is the `MessageSink`'s business; who keeps the books is the
/// `ConnectionObserver`'s. The shell knows neither vigild's registry nor its log.
///
/// Every method is called on the channel's event loop.
public final class SupervisedConnectionHandler: ChannelDuplexHandler, WheelTimerTarget {
    public typealias InboundIn = WebSocketFrame
    /// Frames a client program writes (the shell encodes them as it does its own).
    public typealias OutboundIn = WebSocketFrame
    /// Encoded frames: the shell writes bytes (`OutboundWriter`, `FrameEncoder`).
    public typealias OutboundOut = ByteBuffer

    /// How a supervised connection behaves, fixed when it is set up.
    public struct Configuration: Sendable {
        public var role: WebSocketRole
        public var policy: SupervisionPolicy
        public var limits: FramingLimits
        /// Answer the remote end's pings. Off only to play a peer dead to the heartbeat (tests,
        /// the load generator's `--no-pong`).
        public var answersPings = true
        /// Answer the remote end's close frame with one of this end's. Off only to play a peer
        /// that never completes a close handshake (tests).
        public var answersClose = true

        public init(role: WebSocketRole, policy: SupervisionPolicy, limits: FramingLimits) {
            self.role = role
            self.policy = policy
            self.limits = limits
        }
    }

    public let role: WebSocketRole
    /// What happens to this connection's messages.
    public let sink: any MessageSink
    private var supervisor: ConnectionSupervisor
    private var assembler: WebSocketMessageAssembler
    /// Frames out, flush batching, and reading paused for backpressure.
    private let outbound: OutboundWriter
    private let observer: any ConnectionObserver
    private let clock: ConnectionClock
    /// Inflates compressed messages as they arrive, when this end is a permessage-deflate endpoint.
    private let deflate: MessageDeflate?
    /// A relay's reader of small compressed messages that may be the application pong.
    private let pongReader: MessageDeflate?
    private let maxMessageSize: Int
    /// Whether the application heartbeat may run on this connection (`MessageCompression.allowsAppHeartbeat`).
    private let allowsAppHeartbeat: Bool
    private let answersPings: Bool
    private let answersClose: Bool

    private let wheel: TimerWheel
    /// The deadline the wheel will call back at, and the token that call carries.
    private var timerDeadline: MonotonicInstant?
    private var timerToken: UInt64 = 0
    /// Valid between handlerAdded and handlerRemoved; the wheel's callback needs it.
    private var context: ChannelHandlerContext?

    /// - Parameters:
    ///   - compression: what the handshake settled about permessage-deflate.
    public init(
        configuration: Configuration, sink: any MessageSink, observer: any ConnectionObserver,
        wheel: TimerWheel, clock: ConnectionClock = .system, openedAt: MonotonicInstant,
        compression: MessageCompression = .off
    ) {
        self.role = configuration.role
        self.allowsAppHeartbeat = compression.allowsAppHeartbeat
        var random = SystemRandomNumberGenerator()
        self.supervisor = ConnectionSupervisor(
            policy: Self.effective(configuration.policy, allowsAppHeartbeat: compression.allowsAppHeartbeat),
            transportCloser: configuration.role == .server ? .localEnd : .remoteEnd,
            openedAt: openedAt, pingSeed: random.next())
        self.assembler = WebSocketMessageAssembler(
            role: configuration.role, limits: configuration.limits, compressionAgreed: compression.isAgreed)
        self.deflate = compression.deflate
        self.pongReader = compression.pongReader
        self.maxMessageSize = configuration.limits.maxMessageSize
        self.outbound = OutboundWriter(
            role: configuration.role, maxFrameSize: configuration.limits.maxFrameSize, deflate: compression.deflate)
        self.sink = sink
        self.observer = observer
        self.wheel = wheel
        self.clock = clock
        self.answersPings = configuration.answersPings
        self.answersClose = configuration.answersClose
    }

    // MARK: - What sinks and client programs may do

    /// Whether messages may still be sent (no close frame sent or received yet).
    public var isOpen: Bool { supervisor.isOpen }

    /// Whether the transport takes writes as fast as they come (the outbound backlog is under
    /// the channel's high water mark).
    public var isWritable: Bool { context?.channel.isWritable ?? false }

    /// The channel, while the handler is in its pipeline.
    public var channel: (any Channel)? { context?.channel }

    /// The supervisor's phase, for tests and reports.
    public var phase: ConnectionSupervisor.Phase { supervisor.phase }

    /// Sends a whole message (masked when this end is the client): one frame, or fragments of
    /// `max_frame` bytes when it is longer. Refused once a close frame has been sent or received
    /// (`promise` fails with `ChannelError.outputClosed`). `promise` completes when the kernel
    /// has taken the message.
    public func send(_ message: WebSocketMessage, promise: EventLoopPromise<Void>? = nil) {
        guard let context, supervisor.isOpen else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if outbound.write(message, context: context, promise: promise) { observer.compressedMessageSent() }
        observer.messageSent(bytes: message.data.readableBytes)
        flushUnlessReading(context: context)
    }

    /// Passes on a ping the partner connection received (a relay). Ignored once closing.
    public func relayPing(_ payload: ByteBuffer) {
        guard let context, supervisor.isOpen else { return }
        outbound.write(.ping, payload, context: context)
        flushUnlessReading(context: context)
    }

    /// Passes on a pong the partner connection received that was not an answer to its own ping.
    public func relayPong(_ payload: ByteBuffer) {
        guard let context, supervisor.isOpen else { return }
        outbound.write(.pong, payload, context: context)
        flushUnlessReading(context: context)
    }

    /// Starts a graceful close: the close frame now, the record when the remote end answers
    /// (or the close timeout passes).
    public func close(_ close: LocalClose) {
        guard let context else { return }
        handle(.closeRequested(close), context: context)
    }

    /// Ends the connection now although the heartbeat finds it alive (a monitor whose requests
    /// go unanswered): 1008 with `reason`, TCP closed at once, recorded `abnormal` with `cause`.
    public func giveUp(cause: CloseCause, reason: String) {
        guard let context else { return }
        handle(.giveUp(cause: cause, reason: reason), context: context)
    }

    /// Stops reading from the socket until `resumeReading()`: TCP's flow control then slows the
    /// remote end down. Timers keep running. Ignored once a close frame has been sent or
    /// received: the remote end's close frame (or FIN) may sit behind data it sent, and nothing
    /// read from then on reaches the sink, so there is nothing left to hold back.
    public func pauseReading() {
        guard supervisor.isOpen else { return }
        outbound.pauseReading()
    }

    public func resumeReading() {
        outbound.resumeReading(context: context)
    }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armTimer()
        if context.channel.isActive {
            sink.connectionOpened(self)
        } else {
            // Closed before we were added: the supervisor still owes its one record.
            handle(.transportClosed, context: context)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        disarmTimer()
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !supervisor.isFinished else { return }
        outbound.readBurstBegan()
        let frame = unwrapInboundIn(data)
        let now = clock.now()
        observer.frameReceived(at: now)
        let inbound: WebSocketInbound
        do {
            inbound = try assembler.receive(frame)
        } catch {
            violation(error, context: context, at: now)
            return
        }
        switch inbound {
        case .message(var message):
            handle(.frameReceived, context: context, at: now)
            if message.compressed { observer.compressedMessageReceived() }
            if message.compressed, let deflate {
                do {
                    message.data = try deflate.inflate(
                        message.data, limit: maxMessageSize, allocator: context.channel.allocator)
                    message.compressed = false
                    if message.kind == .text { try WebSocketMessageAssembler.validateText(message.data) }
                } catch {
                    violation(error, context: context, at: now)
                    return
                }
            }
            if message.kind == .text, let heartbeat = supervisor.policy.appHeartbeat,
                isAppPong(message, heartbeat, allocator: context.channel.allocator)
            {
                // The application-level heartbeat's reply: the heartbeat's, not the sink's.
                let action = supervisor.handle(.appPongReceived, at: now)
                if case .appRoundTrip(let roundTrip) = action { observer.appPongReceived(roundTrip: roundTrip) }
                perform(action, context: context, at: now)
                return
            }
            observer.messageReceived(message)
            if supervisor.isOpen { sink.received(message, from: self) }
        case .fragment:
            handle(.frameReceived, context: context, at: now)
        case .ping(let payload):
            handle(.frameReceived, context: context, at: now)
            observer.pingReceived(payload)
            guard supervisor.isOpen else { return }
            if answersPings { outbound.write(.pong, payload, context: context) }
            sink.pingReceived(payload, from: self)
        case .pong(let payload):
            let action = supervisor.handle(.pongReceived(Self.pingPayload(in: payload)), at: now)
            if case .roundTrip(let roundTrip) = action {
                observer.pongReceived(payload, roundTrip: roundTrip)
            } else {
                observer.pongReceived(payload, roundTrip: nil)
                if supervisor.isOpen { sink.pongReceived(payload, from: self) }
            }
            perform(action, context: context, at: now)
        case .close(let payload):
            observer.closeFrameReceived(payload)
            var action = supervisor.handle(.closeReceived(code: payload.code, reason: payload.reason), at: now)
            if !answersClose, case .finish(var finish) = action {
                finish.closeFrame = nil
                action = .finish(finish)
            }
            perform(action, context: context, at: now)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if outbound.readBurstEnded(context: context) { reportBacklog(context: context) }
        context.fireChannelReadComplete()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !supervisor.isFinished else { return }  // e.g. the decoder refusing bytes after its own error
        if let framingError = WebSocketPipeline.framingError(from: error) {
            violation(framingError, context: context, at: clock.now())
        } else {
            observer.transportFailed(error)
            handle(.transportFailed, context: context)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let ended as WebSocketInputEnded:
            handle(.inputEnded(midFrame: ended.midFrame), context: context)
        case let request as CloseRequest:
            handle(.closeRequested(request.close), context: context)
        case let update as PolicyUpdate:
            supervisor.update(policy: Self.effective(update.policy, allowsAppHeartbeat: allowsAppHeartbeat))
            armTimer()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        handle(.transportClosed, context: context)
        disarmTimer()
        context.fireChannelInactive()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        reportBacklog(context: context)
        sink.writabilityChanged(self)
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        outbound.read(context: context)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Frames a client program writes, encoded as they are (tests build bad ones).
        outbound.write(unwrapOutboundIn(data), context: context, promise: promise)
    }

    public func wheelTimerFired(token: UInt64) {
        guard token == timerToken, let context else { return }  // replaced, or the connection is gone
        timerDeadline = nil
        handle(.timerFired, context: context)
    }

    // MARK: - Supervisor plumbing

    private func violation(_ error: FramingError, context: ChannelHandlerContext, at now: MonotonicInstant) {
        observer.violationDetected(error)
        handle(.protocolViolation(error.violation), context: context, at: now)
    }

    private func handle(_ event: SupervisorEvent, context: ChannelHandlerContext, at now: MonotonicInstant? = nil) {
        let now = now ?? clock.now()
        perform(supervisor.handle(event, at: now), context: context, at: now)
    }

    private func perform(_ action: SupervisorAction, context: ChannelHandlerContext, at now: MonotonicInstant) {
        switch action {
        case .none, .roundTrip, .appRoundTrip:
            armTimer()
        case .sendAppPing(let text):
            outbound.write(.text, context.channel.allocator.buffer(string: text), context: context)
            observer.appPingSent()
            flushUnlessReading(context: context)
            armTimer()
        case .sendPing(let ping):
            outbound.write(ping, context: context)
            observer.pingSent()
            flushUnlessReading(context: context)
            armTimer()
        case .startClose(let close):
            outbound.write(close, context: context)
            flushNow(context: context)
            resumeReading()  // the answer must be read, even if a sink had paused this connection
            armTimer()
        case .finish(let finish):
            if let close = finish.closeFrame {
                outbound.write(close, context: context)
                flushNow(context: context)
            }
            observer.connectionClosed(finish.outcome, at: now)
            sink.connectionEnded(finish.outcome, self)
            if finish.closeTransport {
                disarmTimer()
                context.close(promise: nil)
            } else {
                resumeReading()  // the remote end's FIN must be seen
                armTimer()
            }
        case .closeTransport:
            disarmTimer()
            context.close(promise: nil)
        }
    }

    /// `policy` as this connection runs it: without the application heartbeat where it cannot run.
    static func effective(_ policy: SupervisionPolicy, allowsAppHeartbeat: Bool) -> SupervisionPolicy {
        guard !allowsAppHeartbeat, policy.appHeartbeat != nil else { return policy }
        var policy = policy
        policy.appHeartbeat = nil
        return policy
    }

    /// Whether a text message is the application heartbeat's pong: as it is, or, relayed
    /// compressed while a pong is awaited and small enough to be one, once inflated (at most
    /// the pong's length: anything longer is not it). A compressed pong's deflate stream is at
    /// most a few bytes longer than the pong (a stored block adds five); the margin is generous.
    private func isAppPong(_ message: WebSocketMessage, _ heartbeat: AppHeartbeat, allocator: ByteBufferAllocator)
        -> Bool
    {
        guard message.compressed else { return heartbeat.isPong(message.data.readableBytesView) }
        let pongLength = heartbeat.pong.utf8.count
        guard let pongReader, supervisor.awaitsAppPong, message.data.readableBytes <= pongLength + 64,
            let inflated = try? pongReader.inflate(message.data, limit: pongLength, allocator: allocator)
        else { return false }
        return heartbeat.isPong(inflated.readableBytesView)
    }

    /// A pong's payload read as one of our ping payloads (8 bytes, big-endian); nil otherwise.
    /// Read as one integer: going through a generic collection of bytes cost more than the rest
    /// of the pong's handling.
    static func pingPayload(in payload: ByteBuffer) -> PingPayload? {
        guard payload.readableBytes == 8 else { return nil }
        return payload.getInteger(at: payload.readerIndex, as: UInt64.self).map(PingPayload.init(value:))
    }

    private func flushUnlessReading(context: ChannelHandlerContext) {
        if outbound.flushUnlessReading(context: context) { reportBacklog(context: context) }
    }

    private func flushNow(context: ChannelHandlerContext) {
        if outbound.flush(context: context) { reportBacklog(context: context) }
    }

    /// Tells the supervisor how much output the kernel has not taken yet and whether the channel
    /// is writable. Asked only while the channel is over its high water mark (`max_backlog`) and
    /// when it drops back under the low one, so a connection that keeps up never pays for it.
    private func reportBacklog(context: ChannelHandlerContext) {
        guard !supervisor.isFinished,
            let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)
        else { return }
        handle(.outboundBacklog(bytes: buffered, writable: context.channel.isWritable), context: context)
    }

    /// Keeps one timer set at the supervisor's next deadline, resetting it only when that
    /// deadline is earlier than the one set (a later deadline is found when the early timer fires).
    private func armTimer() {
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
