/// The timing rules one connection is supervised by.
///
/// Kept separate from the state machine so a reload can hand new values to live connections.
public struct SupervisionPolicy: Sendable, Hashable {
    /// How often a ping is sent; `.zero` disables pings (and with them pong timeouts).
    public var pingInterval: Duration
    /// How long after a ping its pong may arrive before the peer is declared dead.
    public var pongTimeout: Duration
    /// Close a connection that receives no frame at all for this long; `.zero` disables it.
    public var readDeadline: Duration
    /// After vigild sends a close frame, how long the peer has to answer with its own.
    public var closeTimeout: Duration

    public init(
        pingInterval: Duration = .seconds(30),
        pongTimeout: Duration = .seconds(10),
        readDeadline: Duration = .zero,
        closeTimeout: Duration = .seconds(5)
    ) {
        self.pingInterval = pingInterval
        self.pongTimeout = pongTimeout
        self.readDeadline = readDeadline
        self.closeTimeout = closeTimeout
    }

    public var pingsEnabled: Bool { pingInterval > .zero }
    public var readDeadlineEnabled: Bool { readDeadline > .zero }
}
