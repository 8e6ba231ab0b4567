/// Something that happened to a supervised connection, as reported by the I/O shell.
public enum SupervisorEvent: Sendable, Hashable {
    /// A complete data frame, fragment or ping arrived (counts as activity for the read deadline).
    case frameReceived
    /// A pong arrived; its payload read as one of vigild's ping payloads, or `nil` when it is
    /// not one (wrong length): such a pong is activity, never a round trip.
    case pongReceived(PingPayload?)
    /// A valid close frame arrived; `code` is `nil` when the frame carried no status.
    case closeReceived(code: UInt16?, reason: String)
    /// The peer broke the protocol; vigild answers with a close frame.
    case protocolViolation(ProtocolViolation)
    /// The peer closed its side of TCP; `midFrame` when part of a frame was still unread.
    case inputEnded(midFrame: Bool)
    /// Reading from or writing to the socket failed (connection reset and the like).
    case transportFailed
    /// More unwritten outbound data is queued than the backlog limit allows.
    case backlogExceeded
    /// vigild is shutting down and closes every connection with 1001.
    case shutdownRequested
    /// The timer armed for `nextDeadline` fired.
    case timerFired
    /// The transport is gone and none of the events above explained why.
    case transportClosed
}

/// A protocol violation detected by the framing layer, with the status vigild answers it with.
public struct ProtocolViolation: Sendable, Hashable {
    /// One of `.protocolError` (1002), `.invalidUTF8` (1007) or `.messageTooBig` (1009).
    public var cause: CloseCause
    /// A short human explanation, sent as the close reason (at most 123 bytes of UTF-8).
    public var detail: String
    /// What vigild can still expect from the peer after its close frame.
    public var aftermath: Aftermath

    public enum Aftermath: Sendable, Hashable {
        /// Frames can still be read: vigild waits (up to the close timeout) for the peer's close.
        case awaitReply
        /// The frame decoder itself failed, so the peer's reply cannot be read: close at once,
        /// `clean: false`.
        case framingLost
        /// The violation was in the peer's own close frame (a bad code or reason): vigild's close
        /// answers it, the handshake is complete, and TCP is closed at once with `clean: true`.
        case peerAlreadyClosing
    }

    public init(cause: CloseCause, detail: String, aftermath: Aftermath) {
        precondition([.protocolError, .invalidUTF8, .messageTooBig].contains(cause), "not a violation cause: \(cause)")
        self.cause = cause
        self.detail = detail
        self.aftermath = aftermath
    }

    /// The status code vigild sends for this violation.
    public var status: UInt16 {
        switch cause {
        case .invalidUTF8: CloseStatus.invalidPayload
        case .messageTooBig: CloseStatus.messageTooBig
        default: CloseStatus.protocolError
        }
    }
}
