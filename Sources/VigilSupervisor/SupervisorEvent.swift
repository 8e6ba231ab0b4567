/// Something that happened to a supervised connection, as reported by the I/O shell.
public enum SupervisorEvent: Sendable, Hashable {
    /// A complete data frame, fragment or ping arrived (counts as activity for the read deadline).
    case frameReceived
    /// A pong arrived; its payload read as one of this end's ping payloads, or `nil` when it is
    /// not one (wrong length): such a pong is activity, never a round trip.
    case pongReceived(PingPayload?)
    /// The application-level heartbeat's reply arrived (a text message equal to its `pong`).
    case appPongReceived
    /// A valid close frame arrived; `code` is `nil` when the frame carried no status.
    case closeReceived(code: UInt16?, reason: String)
    /// The remote end broke the protocol: this end fails the connection (RFC 6455 §7.1.7).
    case protocolViolation(ProtocolViolation)
    /// The remote end closed its side of TCP; `midFrame` when part of a frame was still unread.
    case inputEnded(midFrame: Bool)
    /// Reading from or writing to the socket failed (connection reset and the like).
    case transportFailed
    /// The transport is gone and none of the events above explained why.
    case transportClosed
    /// How much output the transport has not taken yet, and whether it is taking writes
    /// (`writable` false from when the backlog crossed `maxBacklog` until it fell back under
    /// half of it). Reported while the transport is not writable, and once it is again.
    case outboundBacklog(bytes: Int, writable: Bool)
    /// This end's own code asks to close: a graceful close handshake (vigild's shutdown, a
    /// client program's `close()`, later a drain or a relayed close).
    case closeRequested(LocalClose)
    /// The timer armed for `nextDeadline` fired.
    case timerFired
    /// This end's own code gives up on a connection that the heartbeat still finds alive (a
    /// monitor's requests go unanswered): close 1008 with `reason`, TCP closed at once, no
    /// wait for an answer; recorded `abnormal` with `cause`, as a pong timeout is.
    case giveUp(cause: CloseCause, reason: String)
}

/// A close this end starts and waits to have answered.
public struct LocalClose: Sendable, Hashable {
    /// The status sent; `nil` sends an empty close frame.
    public var code: UInt16?
    public var reason: String
    /// What the record will say caused the end.
    public var cause: CloseCause
    /// With `cause == .partnerClosed`: how the other leg ended.
    public var partner: PartnerEnding?

    public init(code: UInt16?, reason: String, cause: CloseCause, partner: PartnerEnding? = nil) {
        self.code = code
        self.reason = reason
        self.cause = cause
        self.partner = partner
    }

    /// vigild stops: 1001 to every connection.
    public static let shutdown = LocalClose(
        code: CloseStatus.goingAway, reason: "vigild shutting down", cause: .shutdown)

    var frame: OutgoingClose { OutgoingClose(code: code, reason: reason) }

    /// The record of this close: its kind follows the status sent.
    func outcome(clean: Bool) -> CloseOutcome {
        let status = code ?? CloseStatus.noStatusReceived
        return CloseOutcome(
            kind: .forStatus(status), code: status, cause: cause, initiator: .local, clean: clean, reason: reason,
            partner: partner)
    }
}

/// A protocol violation detected by the framing layer, with the status this end answers it with.
public struct ProtocolViolation: Sendable, Hashable {
    /// One of `.protocolError` (1002), `.invalidUTF8` (1007) or `.messageTooBig` (1009).
    public var cause: CloseCause
    /// A short human explanation, sent as the close reason (at most 123 bytes of UTF-8).
    public var detail: String
    /// Whether the violation was in the remote end's own close frame (a bad code or reason): it
    /// has already started closing, so this end's close frame completes the handshake.
    public var inCloseFrame: Bool

    public init(cause: CloseCause, detail: String, inCloseFrame: Bool = false) {
        precondition([.protocolError, .invalidUTF8, .messageTooBig].contains(cause), "not a violation cause: \(cause)")
        self.cause = cause
        self.detail = detail
        self.inCloseFrame = inCloseFrame
    }

    /// The status code this end sends for this violation.
    public var status: UInt16 {
        switch cause {
        case .invalidUTF8: CloseStatus.invalidPayload
        case .messageTooBig: CloseStatus.messageTooBig
        default: CloseStatus.protocolError
        }
    }
}
