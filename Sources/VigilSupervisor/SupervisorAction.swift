/// What the I/O shell must do after an event: exactly one thing per event.
///
/// A plain enum rather than an array or a struct of optionals, so the hot path (every received
/// frame) allocates nothing and no caller can read the parts in the wrong order.
public enum SupervisorAction: Sendable, Hashable {
    case none
    /// Send a ping with this payload.
    case sendPing(PingPayload)
    /// A pong answered the outstanding ping after this long.
    case roundTrip(Duration)
    /// Send the application-level ping: this text message.
    case sendAppPing(String)
    /// The application-level pong answered the outstanding app ping after this long.
    case appRoundTrip(Duration)
    /// Send this close frame and keep reading: the remote end's close frame completes the
    /// handshake (or the close timeout ends the wait).
    case startClose(OutgoingClose)
    /// The connection is over: send the close frame if any, record the outcome (this happens
    /// exactly once), then close the transport or, after a completed handshake on the side
    /// that does not close first, wait for the remote end to close it.
    case finish(Finish)
    /// The wait for the remote end to close TCP is over (it did, or the close timeout passed):
    /// close the transport. Nothing is left to record.
    case closeTransport

    public struct Finish: Sendable, Hashable {
        /// Sent before anything else; `nil` when no close frame is to be sent.
        public var closeFrame: OutgoingClose?
        public var outcome: CloseOutcome
        /// `false`: leave the transport open until the remote end closes it (a `.closeTransport`
        /// follows, at the latest when the close timeout passes).
        public var closeTransport: Bool

        public init(closeFrame: OutgoingClose?, outcome: CloseOutcome, closeTransport: Bool) {
            self.closeFrame = closeFrame
            self.outcome = outcome
            self.closeTransport = closeTransport
        }
    }

    /// The outcome this action records, if any.
    public var outcome: CloseOutcome? {
        if case .finish(let finish) = self { finish.outcome } else { nil }
    }
}

/// A close frame this end sends.
public struct OutgoingClose: Sendable, Hashable {
    public var code: UInt16?
    public var reason: String

    public init(code: UInt16?, reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Which end closes the TCP connection once the close handshake is complete. RFC 6455 §7.1.1
/// gives that to the server; a client waits for it, up to the close timeout, and then closes.
public enum TransportCloser: Sendable, Hashable {
    case localEnd
    case remoteEnd
}
