/// The heartbeat, deadline and close-handshake state machine of one WebSocket connection, for
/// either end of it.
///
/// It owns no socket, timer or clock: the I/O shell feeds it events stamped with the current
/// monotonic time, obeys the one action each event returns, and keeps one timer armed at
/// `nextDeadline`. Deadlines are evaluated lazily, so a received frame never re-arms a timer:
/// when the timer fires early (because activity moved a deadline later) the machine simply
/// reports the new one.
///
/// Guarantees: exactly one `.finish` (one `CloseOutcome`) over the machine's life; after it,
/// at most one `.closeTransport` and otherwise nothing but `.none`.
public struct ConnectionSupervisor: Sendable {
    public enum Phase: Sendable, Hashable {
        /// Exchanging messages and heartbeats.
        case open
        /// This end sent the close frame of `close` and waits for the remote end's until `deadline`.
        case closing(LocalClose, deadline: MonotonicInstant)
        /// The outcome is recorded; this end waits until `deadline` for the remote end to close TCP.
        case awaitingTransportClose(deadline: MonotonicInstant)
        /// The outcome is recorded and the transport is (being) closed.
        case closed
    }

    public private(set) var policy: SupervisionPolicy
    public private(set) var phase: Phase = .open
    /// Who closes TCP after a completed close handshake: the server end (RFC 6455 §7.1.1).
    public let transportCloser: TransportCloser
    /// The last measured ping round trip.
    public private(set) var lastRoundTrip: Duration?
    /// The last measured application-level round trip.
    public private(set) var lastAppRoundTrip: Duration?
    /// When the last complete frame of any kind arrived (initially: when the connection opened).
    public private(set) var lastFrameAt: MonotonicInstant

    private var nextPingAt: MonotonicInstant?
    private var lastPingAt: MonotonicInstant?
    private var outstandingPing: (payload: PingPayload, sentAt: MonotonicInstant)?
    private var nextAppPingAt: MonotonicInstant?
    private var lastAppPingAt: MonotonicInstant?
    /// When the unanswered app ping went out.
    private var outstandingAppPing: MonotonicInstant?
    /// Whether an application ping awaits its pong (a relay inflates a compressed message to
    /// look for the pong only then).
    public var awaitsAppPong: Bool { outstandingAppPing != nil }
    /// Since when the transport has not been writable, if it is not.
    private var stalledSince: MonotonicInstant?
    private var payloads: PingPayloads
    private let openedAt: MonotonicInstant

    /// - Parameter pingSeed: where this connection's ping payloads start (from the system's
    ///   random source in the shell; fixed in tests).
    public init(
        policy: SupervisionPolicy, transportCloser: TransportCloser, openedAt now: MonotonicInstant, pingSeed: UInt64
    ) {
        self.policy = policy
        self.payloads = PingPayloads(seed: pingSeed)
        self.transportCloser = transportCloser
        self.openedAt = now
        self.lastFrameAt = now
        self.nextPingAt = policy.pingsEnabled ? now + policy.pingInterval : nil
        self.nextAppPingAt = policy.appHeartbeat.map { now + $0.interval }
    }

    /// Whether data may still be sent (no close frame sent or received yet).
    public var isOpen: Bool { phase == .open }

    /// Whether the outcome has been recorded.
    public var isFinished: Bool {
        switch phase {
        case .open, .closing: false
        case .awaitingTransportClose, .closed: true
        }
    }

    /// When the shell's timer must next fire, or `nil` when nothing is pending.
    public var nextDeadline: MonotonicInstant? {
        switch phase {
        case .open:
            return earliest(
                earliest(earliest(pingDue, pongDeadline), earliest(readDeadline, writeDeadline)),
                earliest(appPingDue, appPongDeadline))
        case .closing(_, let deadline), .awaitingTransportClose(let deadline):
            return deadline
        case .closed:
            return nil
        }
    }

    private var pingDue: MonotonicInstant? { outstandingPing == nil ? nextPingAt : nil }
    private var pongDeadline: MonotonicInstant? { outstandingPing.map { $0.sentAt + policy.pongTimeout } }
    private var appPingDue: MonotonicInstant? { outstandingAppPing == nil ? nextAppPingAt : nil }
    private var appPongDeadline: MonotonicInstant? {
        guard let sentAt = outstandingAppPing, let heartbeat = policy.appHeartbeat else { return nil }
        return sentAt + heartbeat.timeout
    }
    private var readDeadline: MonotonicInstant? {
        policy.readDeadlineEnabled ? lastFrameAt + policy.readDeadline : nil
    }
    private var writeDeadline: MonotonicInstant? {
        policy.writeTimeoutEnabled ? stalledSince.map { $0 + policy.writeTimeout } : nil
    }

    /// Applies new rules (a configuration reload) without disturbing the connection. The next
    /// ping is rescheduled from the last one sent; an outstanding ping keeps waiting under the
    /// new pong timeout.
    public mutating func update(policy newPolicy: SupervisionPolicy) {
        policy = newPolicy
        if newPolicy.pingsEnabled {
            nextPingAt = (lastPingAt ?? openedAt) + newPolicy.pingInterval
        } else {
            nextPingAt = nil
            outstandingPing = nil
        }
        if let heartbeat = newPolicy.appHeartbeat {
            nextAppPingAt = (lastAppPingAt ?? openedAt) + heartbeat.interval
        } else {
            nextAppPingAt = nil
            outstandingAppPing = nil
        }
    }

    public mutating func handle(_ event: SupervisorEvent, at now: MonotonicInstant) -> SupervisorAction {
        switch event {
        case .frameReceived:
            if phase == .open { lastFrameAt = now }
            return .none
        case .pongReceived(let payload):
            return pongReceived(payload, at: now)
        case .appPongReceived:
            guard phase == .open, let sentAt = outstandingAppPing else { return .none }
            outstandingAppPing = nil
            let roundTrip = now - sentAt
            lastAppRoundTrip = roundTrip
            return .appRoundTrip(roundTrip)
        case .closeReceived(let code, let reason):
            return closeReceived(code: code, reason: reason, at: now)
        case .protocolViolation(let violation):
            return failConnection(violation)
        case .inputEnded(let midFrame):
            return transportEnded(cause: midFrame ? .truncatedFrame : .eof)
        case .transportFailed, .transportClosed:
            return transportEnded(cause: .reset)
        case .outboundBacklog(let bytes, let writable):
            return outboundBacklog(bytes, writable: writable, at: now)
        case .closeRequested(let close):
            return startClose(close, at: now)
        case .timerFired:
            return timerFired(at: now)
        case .giveUp(let cause, let reason):
            guard phase == .open else { return .none }
            return finish(
                closeFrame: OutgoingClose(code: CloseStatus.policyViolation, reason: reason),
                recording: .abnormal(cause, initiator: .local))
        }
    }

    // MARK: - Event handlers

    private mutating func pongReceived(_ payload: PingPayload?, at now: MonotonicInstant) -> SupervisorAction {
        guard phase == .open else { return .none }
        lastFrameAt = now
        guard let outstanding = outstandingPing, payload == outstanding.payload else {
            return .none  // unsolicited or stale: activity only
        }
        outstandingPing = nil
        let roundTrip = now - outstanding.sentAt
        lastRoundTrip = roundTrip
        return .roundTrip(roundTrip)
    }

    private mutating func closeReceived(code: UInt16?, reason: String, at now: MonotonicInstant) -> SupervisorAction {
        switch phase {
        case .open:
            // Answer with the same status (or none); the handshake is then complete.
            return completeHandshake(
                recording: .remoteClosed(code: code, reason: reason), reply: OutgoingClose(code: code, reason: ""),
                at: now)
        case .closing(let pending, _):
            // The remote end answered the close this end started.
            return completeHandshake(recording: pending.outcome(clean: true), reply: nil, at: now)
        case .awaitingTransportClose, .closed:
            return .none
        }
    }

    /// RFC 6455 §7.1.7: send the close frame, close TCP and stop processing, without waiting
    /// for an answer. Only a violation inside the remote end's own close frame leaves a
    /// complete handshake behind (its close, then this end's).
    private mutating func failConnection(_ violation: ProtocolViolation) -> SupervisorAction {
        let close = LocalClose(code: violation.status, reason: violation.detail, cause: violation.cause)
        switch phase {
        case .open:
            return finish(closeFrame: close.frame, recording: close.outcome(clean: violation.inCloseFrame))
        case .closing(let pending, _):
            // The reply this end waited for will not come in good order.
            return finish(closeFrame: nil, recording: pending.outcome(clean: false))
        case .awaitingTransportClose, .closed:
            return .none
        }
    }

    private mutating func startClose(_ close: LocalClose, at now: MonotonicInstant) -> SupervisorAction {
        guard phase == .open else { return .none }
        phase = .closing(close, deadline: now + policy.closeTimeout)
        outstandingPing = nil
        outstandingAppPing = nil
        return .startClose(close.frame)
    }

    private mutating func transportEnded(cause: CloseCause) -> SupervisorAction {
        switch phase {
        case .open:
            return finish(closeFrame: nil, recording: .abnormal(cause, initiator: .remote))
        case .closing(let pending, _):
            return finish(closeFrame: nil, recording: pending.outcome(clean: false))
        case .awaitingTransportClose:
            phase = .closed  // the remote end closed TCP, as it should after the handshake
            return .closeTransport
        case .closed:
            return .none
        }
    }

    /// The write timeout runs from when the transport stopped being writable until it is again:
    /// the same hysteresis that pauses reading, so a connection cannot sit paused with no timer.
    private mutating func outboundBacklog(_ bytes: Int, writable: Bool, at now: MonotonicInstant) -> SupervisorAction {
        switch phase {
        case .open, .closing:
            if bytes > policy.backlogCeiling {
                return slowConsumer()
            }
            if writable {
                stalledSince = nil
            } else if stalledSince == nil {
                stalledSince = now
            }
            return .none
        case .awaitingTransportClose, .closed:
            return .none
        }
    }

    private mutating func timerFired(at now: MonotonicInstant) -> SupervisorAction {
        switch phase {
        case .closed:
            return .none
        case .closing(let pending, let deadline):
            guard now >= deadline else { return .none }
            return finish(closeFrame: nil, recording: pending.outcome(clean: false))
        case .awaitingTransportClose(let deadline):
            guard now >= deadline else { return .none }
            phase = .closed
            return .closeTransport
        case .open:
            // Of several expired deadlines, the one that expired first explains the close.
            var first: (at: MonotonicInstant, cause: CloseCause)?
            func consider(_ deadline: MonotonicInstant?, _ cause: CloseCause) {
                if let deadline, deadline <= now, first.map({ deadline < $0.at }) ?? true { first = (deadline, cause) }
            }
            consider(pongDeadline, .pongTimeout)
            consider(readDeadline, .readDeadline)
            consider(writeDeadline, .slowConsumer)
            consider(appPongDeadline, .appPongTimeout)
            switch first?.cause {
            case .pongTimeout? where stalledSince != nil, .appPongTimeout? where stalledSince != nil:
                // The output is not draining: the ping may still sit behind the backlog, never
                // seen by the remote end. What is known is that it does not read: slow consumer.
                return slowConsumer()
            case .pongTimeout?:
                return finish(
                    closeFrame: OutgoingClose(code: CloseStatus.policyViolation, reason: "pong timeout"),
                    recording: .abnormal(.pongTimeout, initiator: .local))
            case .appPongTimeout?:
                return finish(
                    closeFrame: OutgoingClose(code: CloseStatus.appPongTimeout, reason: "app pong timeout"),
                    recording: .abnormal(.appPongTimeout, initiator: .local))
            case .readDeadline?:
                return finish(
                    closeFrame: OutgoingClose(code: CloseStatus.policyViolation, reason: "read deadline exceeded"),
                    recording: .abnormal(.readDeadline, initiator: .local))
            case .some:
                return slowConsumer()
            case nil:
                break
            }
            if let due = pingDue, due <= now {
                let payload = payloads.next()
                outstandingPing = (payload, now)
                lastPingAt = now
                nextPingAt = now + policy.pingInterval
                return .sendPing(payload)
            }
            if let due = appPingDue, due <= now, let heartbeat = policy.appHeartbeat {
                outstandingAppPing = now
                lastAppPingAt = now
                nextAppPingAt = now + heartbeat.interval
                return .sendAppPing(heartbeat.ping)
            }
            return .none
        }
    }

    // MARK: - Endings

    /// The remote end is not taking what this end writes. No close frame: it could not get
    /// past the backlog. A close already under way keeps its status and did not complete.
    private mutating func slowConsumer() -> SupervisorAction {
        if case .closing(let pending, _) = phase {
            return finish(closeFrame: nil, recording: pending.outcome(clean: false))
        }
        return finish(closeFrame: nil, recording: .abnormal(.slowConsumer, initiator: .local))
    }

    /// Both close frames have been (or are about to be) exchanged: the server end closes TCP
    /// now, the client end waits for it up to the close timeout.
    private mutating func completeHandshake(
        recording outcome: CloseOutcome, reply: OutgoingClose?, at now: MonotonicInstant
    ) -> SupervisorAction {
        clearTimers()
        switch transportCloser {
        case .localEnd:
            phase = .closed
            return .finish(.init(closeFrame: reply, outcome: outcome, closeTransport: true))
        case .remoteEnd:
            phase = .awaitingTransportClose(deadline: now + policy.closeTimeout)
            return .finish(.init(closeFrame: reply, outcome: outcome, closeTransport: false))
        }
    }

    /// Ends the connection now, without (waiting for) a close handshake.
    private mutating func finish(closeFrame: OutgoingClose?, recording outcome: CloseOutcome) -> SupervisorAction {
        clearTimers()
        phase = .closed
        return .finish(.init(closeFrame: closeFrame, outcome: outcome, closeTransport: true))
    }

    private mutating func clearTimers() {
        outstandingPing = nil
        nextPingAt = nil
        outstandingAppPing = nil
        nextAppPingAt = nil
        stalledSince = nil
    }
}

private func earliest(_ a: MonotonicInstant?, _ b: MonotonicInstant?) -> MonotonicInstant? {
    guard let a else { return b }
    guard let b else { return a }
    return min(a, b)
}
