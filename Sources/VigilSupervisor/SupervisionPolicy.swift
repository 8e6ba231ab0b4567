/// The rules one connection is supervised by: its timers and how much unwritten output it may
/// hold.
///
/// Kept separate from the state machine so a reload can hand new values to live connections.
public struct SupervisionPolicy: Sendable, Hashable {
    /// How often a ping is sent; `.zero` disables pings (and with them pong timeouts).
    public var pingInterval: Duration
    /// How long after a ping its pong may arrive before the remote end is declared dead.
    public var pongTimeout: Duration
    /// Close a connection that receives no frame at all for this long; `.zero` disables it.
    public var readDeadline: Duration
    /// After this end sends a close frame, how long the remote end has to answer with its own;
    /// and after a completed close handshake, how long a client waits for the server to close TCP.
    public var closeTimeout: Duration
    /// How long the transport may stay unwritable (its backlog over `maxBacklog`, and not yet
    /// back under half of it) before the remote end is a slow consumer; `.zero` leaves only
    /// `backlogCeiling`.
    public var writeTimeout: Duration
    /// Unwritten outbound bytes over which the transport stops being writable: the shell's high
    /// water mark (the low one is half of it).
    public var maxBacklog: Int
    /// Unwritten outbound bytes that end the connection at once, whatever the write timeout:
    /// the bound on what one connection's output can hold in memory.
    public var backlogCeiling: Int
    /// The application-level heartbeat, for remote ends whose protocol pings are answered by
    /// something other than the application (a browser); `nil`: none.
    public var appHeartbeat: AppHeartbeat?

    public init(
        pingInterval: Duration = .seconds(30),
        pongTimeout: Duration = .seconds(10),
        readDeadline: Duration = .zero,
        closeTimeout: Duration = .seconds(5),
        writeTimeout: Duration = .seconds(10),
        maxBacklog: Int = 1 << 20,
        backlogCeiling: Int = 2 << 20,
        appHeartbeat: AppHeartbeat? = nil
    ) {
        self.pingInterval = pingInterval
        self.pongTimeout = pongTimeout
        self.readDeadline = readDeadline
        self.closeTimeout = closeTimeout
        self.writeTimeout = writeTimeout
        self.maxBacklog = maxBacklog
        self.backlogCeiling = max(backlogCeiling, maxBacklog)
        self.appHeartbeat = appHeartbeat
    }

    public var pingsEnabled: Bool { pingInterval > .zero }
    public var readDeadlineEnabled: Bool { readDeadline > .zero }
    public var writeTimeoutEnabled: Bool { writeTimeout > .zero }
}
