import VigilRegistry

/// One monitor target as the status API reports it: a copy of its monitor's state at one
/// moment, so the status API reads targets without knowing how they are dialed.
public struct TargetReport: Sendable {
    public var name: String
    public var url: String
    public var critical: Bool
    /// `connecting`, `up`, `down`, `backing_off` or `stopped`.
    public var state: String
    public var since: Timestamp
    public var nextAttemptAt: Timestamp?
    /// The backoff rule the next attempt's wait came from.
    public var nextAttemptRule: String?
    /// The open connection, if any.
    public var connection: ConnectionSnapshot?
    /// The application round trip's last reply time (`command`), if it has one.
    public var lastReply: Duration?
    public var commandTimeouts: UInt64
    public var lastClose: CloseRecord?
    public var lastDialError: DialError?
    /// Dial attempts that failed since the last one that connected.
    public var consecutiveFailures: Int
    public var attempts: UInt64
    public var reconnects: UInt64
    /// The share of the last hour it was up, 0 to 1.
    public var uptimeRatio: Double

    /// The last failed dial.
    public struct DialError: Sendable {
        public var at: Timestamp
        /// Where it failed (`dns`, `connect`, `tls`, `handshake`, …).
        public var phase: String
        public var message: String
        /// The status of an HTTP refusal of the upgrade.
        public var httpStatus: Int?

        public init(at: Timestamp, phase: String, message: String, httpStatus: Int?) {
            self.at = at
            self.phase = phase
            self.message = message
            self.httpStatus = httpStatus
        }
    }

    public var isUp: Bool { state == "up" }

    public init(
        name: String, url: String, critical: Bool, state: String, since: Timestamp, nextAttemptAt: Timestamp?,
        nextAttemptRule: String?, connection: ConnectionSnapshot?, lastReply: Duration?, commandTimeouts: UInt64,
        lastClose: CloseRecord?, lastDialError: DialError?, consecutiveFailures: Int, attempts: UInt64,
        reconnects: UInt64,
        uptimeRatio: Double
    ) {
        self.name = name
        self.url = url
        self.critical = critical
        self.state = state
        self.since = since
        self.nextAttemptAt = nextAttemptAt
        self.nextAttemptRule = nextAttemptRule
        self.connection = connection
        self.lastReply = lastReply
        self.commandTimeouts = commandTimeouts
        self.lastClose = lastClose
        self.lastDialError = lastDialError
        self.consecutiveFailures = consecutiveFailures
        self.attempts = attempts
        self.reconnects = reconnects
        self.uptimeRatio = uptimeRatio
    }
}
