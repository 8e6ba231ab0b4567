/// What the I/O shell must do after an event, in this order: send the ping, send the close frame,
/// store the close record, close the transport.
///
/// A plain value rather than an array so the hot path (every received frame) allocates nothing.
public struct SupervisorActions: Sendable, Hashable {
    /// Send a ping with these payload bytes.
    public var sendPing: PingPayload?
    /// Send a close frame; `code == nil` means an empty close payload (echoing a status-less close).
    public var sendClose: OutgoingClose?
    /// Store this close record (happens exactly once per connection).
    public var record: CloseOutcome?
    /// Close the transport now, after handing the close frame (if any) to the socket.
    public var closeTransport: Bool
    /// A measured ping round trip (only from the pong matching the outstanding ping).
    public var roundTrip: Duration?

    public init(
        sendPing: PingPayload? = nil, sendClose: OutgoingClose? = nil, record: CloseOutcome? = nil,
        closeTransport: Bool = false, roundTrip: Duration? = nil
    ) {
        self.sendPing = sendPing
        self.sendClose = sendClose
        self.record = record
        self.closeTransport = closeTransport
        self.roundTrip = roundTrip
    }

    public static let none = SupervisorActions()
}

/// A close frame vigild sends.
public struct OutgoingClose: Sendable, Hashable {
    public var code: UInt16?
    public var reason: String

    public init(code: UInt16?, reason: String) {
        self.code = code
        self.reason = reason
    }
}
