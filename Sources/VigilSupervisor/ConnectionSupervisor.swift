/// The heartbeat, deadline and close-handshake state machine of one WebSocket connection.
///
/// It owns no socket, timer or clock: the I/O shell feeds it events stamped with the current
/// monotonic time, obeys the returned actions, and keeps one timer armed at `nextDeadline`.
/// Deadlines are evaluated lazily, so a received frame never re-arms a timer: when the timer
/// fires early (because activity moved a deadline later) the machine simply reports the new one.
///
/// Guarantees: exactly one `CloseOutcome` is returned over the machine's life, and nothing but
/// `.none` after it.
public struct ConnectionSupervisor: Sendable {
    public enum Phase: Sendable, Hashable {
        /// Exchanging messages and heartbeats.
        case open
        /// vigild sent a close frame and waits for the peer's until `deadline`.
        case closing(deadline: MonotonicInstant)
        /// The outcome is recorded; the connection is finished.
        case closed
    }

    /// The close vigild started, kept until the peer answers or the close timeout passes.
    private struct ServerClose: Sendable {
        var code: UInt16
        var cause: CloseCause
        var reason: String

        func outcome(clean: Bool) -> CloseOutcome {
            CloseOutcome(
                kind: .forStatus(code), code: code, cause: cause, initiator: .server, clean: clean, reason: reason)
        }
    }

    public private(set) var policy: SupervisionPolicy
    public private(set) var phase: Phase = .open
    /// The last measured ping round trip.
    public private(set) var lastRoundTrip: Duration?
    /// When the last complete frame of any kind arrived (initially: when the connection opened).
    public private(set) var lastFrameAt: MonotonicInstant

    private var serverClose: ServerClose?
    private var nextPingAt: MonotonicInstant?
    private var lastPingAt: MonotonicInstant?
    private var outstandingPing: (payload: PingPayload, sentAt: MonotonicInstant)?
    private var nextSequence: UInt64 = 1
    private let openedAt: MonotonicInstant

    public init(policy: SupervisionPolicy, openedAt now: MonotonicInstant) {
        self.policy = policy
        self.openedAt = now
        self.lastFrameAt = now
        self.nextPingAt = policy.pingsEnabled ? now + policy.pingInterval : nil
    }

    /// Whether data may still be sent to the peer (no close frame sent or received yet).
    public var isOpen: Bool { phase == .open }

    /// When the shell's timer must next fire, or `nil` when nothing is pending.
    public var nextDeadline: MonotonicInstant? {
        switch phase {
        case .open:
            return earliest(earliest(pingDue, pongDeadline), readDeadline)
        case .closing(let deadline):
            return deadline
        case .closed:
            return nil
        }
    }

    private var pingDue: MonotonicInstant? { outstandingPing == nil ? nextPingAt : nil }
    private var pongDeadline: MonotonicInstant? { outstandingPing.map { $0.sentAt + policy.pongTimeout } }
    private var readDeadline: MonotonicInstant? {
        policy.readDeadlineEnabled ? lastFrameAt + policy.readDeadline : nil
    }

    /// Applies new timing rules (a configuration reload) without disturbing the connection.
    /// The next ping is rescheduled from the last one sent; an outstanding ping keeps waiting
    /// under the new pong timeout.
    public mutating func update(policy newPolicy: SupervisionPolicy) {
        policy = newPolicy
        if newPolicy.pingsEnabled {
            nextPingAt = (lastPingAt ?? openedAt) + newPolicy.pingInterval
        } else {
            nextPingAt = nil
            outstandingPing = nil
        }
    }

    public mutating func handle(_ event: SupervisorEvent, at now: MonotonicInstant) -> SupervisorActions {
        switch event {
        case .frameReceived:
            if phase == .open { lastFrameAt = now }
            return .none
        case .pongReceived(let payload):
            return pongReceived(payload, at: now)
        case .closeReceived(let code, let reason):
            return closeReceived(code: code, reason: reason)
        case .protocolViolation(let violation):
            return startClose(
                ServerClose(code: violation.status, cause: violation.cause, reason: violation.detail),
                at: now, aftermath: violation.aftermath)
        case .inputEnded(let midFrame):
            return transportEnded(cause: midFrame ? .truncatedFrame : .eof)
        case .transportFailed, .transportClosed:
            return transportEnded(cause: .reset)
        case .backlogExceeded:
            return finish(serverCause: .slowConsumer, closeFrame: nil)
        case .shutdownRequested:
            return startClose(
                ServerClose(code: CloseStatus.goingAway, cause: .shutdown, reason: "server shutting down"),
                at: now, aftermath: .awaitReply)
        case .timerFired:
            return timerFired(at: now)
        }
    }

    // MARK: - Event handlers

    private mutating func pongReceived(_ payload: PingPayload?, at now: MonotonicInstant) -> SupervisorActions {
        guard phase == .open else { return .none }
        lastFrameAt = now
        guard let outstanding = outstandingPing, payload == outstanding.payload else {
            return .none  // unsolicited or stale: activity only
        }
        outstandingPing = nil
        let roundTrip = now - outstanding.sentAt
        lastRoundTrip = roundTrip
        return SupervisorActions(roundTrip: roundTrip)
    }

    private mutating func closeReceived(code: UInt16?, reason: String) -> SupervisorActions {
        switch phase {
        case .open:
            // Answer with the same status (or none), then close TCP: the server closes first.
            let outcome = CloseOutcome.peerClosed(code: code, reason: reason)
            return close(recording: outcome, closeFrame: OutgoingClose(code: code, reason: ""))
        case .closing:
            // The peer answered the close vigild started: the handshake completed.
            guard let pending = serverClose else { preconditionFailure("closing without a pending close") }
            return close(recording: pending.outcome(clean: true), closeFrame: nil)
        case .closed:
            return .none
        }
    }

    private mutating func startClose(
        _ close: ServerClose, at now: MonotonicInstant, aftermath: ProtocolViolation.Aftermath
    ) -> SupervisorActions {
        guard phase == .open else { return .none }
        let frame = OutgoingClose(code: close.code, reason: close.reason)
        switch aftermath {
        case .framingLost:
            return self.close(recording: close.outcome(clean: false), closeFrame: frame)
        case .peerAlreadyClosing:
            return self.close(recording: close.outcome(clean: true), closeFrame: frame)
        case .awaitReply:
            break
        }
        serverClose = close
        phase = .closing(deadline: now + policy.closeTimeout)
        outstandingPing = nil
        return SupervisorActions(sendClose: frame)
    }

    private mutating func transportEnded(cause: CloseCause) -> SupervisorActions {
        switch phase {
        case .open:
            return close(recording: .abnormal(cause, initiator: .peer), closeFrame: nil)
        case .closing:
            guard let pending = serverClose else { preconditionFailure("closing without a pending close") }
            return close(recording: pending.outcome(clean: false), closeFrame: nil)
        case .closed:
            return .none
        }
    }

    private mutating func timerFired(at now: MonotonicInstant) -> SupervisorActions {
        switch phase {
        case .closed:
            return .none
        case .closing(let deadline):
            guard now >= deadline, let pending = serverClose else { return .none }
            return close(recording: pending.outcome(clean: false), closeFrame: nil)
        case .open:
            // Of two expired deadlines, the one that expired first explains the close.
            let pongExpired = pongDeadline.flatMap { $0 <= now ? $0 : nil }
            let readExpired = readDeadline.flatMap { $0 <= now ? $0 : nil }
            if let pong = pongExpired, readExpired.map({ pong <= $0 }) ?? true {
                return finish(
                    serverCause: .pongTimeout,
                    closeFrame: OutgoingClose(code: CloseStatus.policyViolation, reason: "pong timeout"))
            }
            if readExpired != nil {
                return finish(
                    serverCause: .readDeadline,
                    closeFrame: OutgoingClose(code: CloseStatus.policyViolation, reason: "read deadline exceeded"))
            }
            if let due = pingDue, due <= now {
                let payload = PingPayload(sequence: nextSequence)
                nextSequence &+= 1
                outstandingPing = (payload, now)
                lastPingAt = now
                nextPingAt = now + policy.pingInterval
                return SupervisorActions(sendPing: payload)
            }
            return .none
        }
    }

    // MARK: - Endings

    /// vigild ends the connection without waiting for a close handshake (deadlines, slow consumer).
    private mutating func finish(serverCause cause: CloseCause, closeFrame: OutgoingClose?) -> SupervisorActions {
        guard phase != .closed else { return .none }
        if case .closing = phase, let pending = serverClose {
            // A close is already under way; its status explains the end, and it did not complete.
            return close(recording: pending.outcome(clean: false), closeFrame: nil)
        }
        return close(recording: .abnormal(cause, initiator: .server), closeFrame: closeFrame)
    }

    private mutating func close(recording outcome: CloseOutcome, closeFrame: OutgoingClose?) -> SupervisorActions {
        phase = .closed
        serverClose = nil
        outstandingPing = nil
        nextPingAt = nil
        return SupervisorActions(sendClose: closeFrame, record: outcome, closeTransport: true)
    }
}

private func earliest(_ a: MonotonicInstant?, _ b: MonotonicInstant?) -> MonotonicInstant? {
    guard let a else { return b }
    guard let b else { return a }
    return min(a, b)
}
