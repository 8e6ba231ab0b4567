import VigilSupervisor

/// The permanent record of how one connection ended.
public struct CloseRecord: Sendable, Hashable {
    public var id: UInt64
    public var identity: ConnectionIdentity
    public var outcome: CloseOutcome
    public var openedAt: Timestamp
    public var closedAt: Timestamp
    public var duration: Duration
    public var lastRoundTrip: Duration?
    public var lastAppRoundTrip: Duration?
    public var messagesIn: UInt64
    public var messagesOut: UInt64
    public var compressedIn: UInt64 = 0
    public var compressedOut: UInt64 = 0
    /// Its place among all closes since vigild started (1 for the first), set as it is logged:
    /// the cursor `/closes?before_seq=` pages with.
    public var sequence: UInt64 = 0

    public var kind: CloseKind { outcome.kind }
    public var cause: CloseCause { outcome.cause }
}

/// Which close records a query wants; `nil` fields match everything.
public struct CloseFilter: Sendable, Hashable {
    public var kind: CloseKind?
    public var cause: CloseCause?
    public var client: String?
    public var pairID: UInt64?
    public var leg: ConnectionLeg?
    public var target: String?
    public var route: String?

    public init(
        kind: CloseKind? = nil, cause: CloseCause? = nil, client: String? = nil, pairID: UInt64? = nil,
        leg: ConnectionLeg? = nil, target: String? = nil, route: String? = nil
    ) {
        self.route = route
        self.kind = kind
        self.cause = cause
        self.client = client
        self.pairID = pairID
        self.leg = leg
        self.target = target
    }

    public func matches(_ record: CloseRecord) -> Bool {
        (kind == nil || record.kind == kind) && (cause == nil || record.cause == cause)
            && (client == nil || record.identity.client == client)
            && (pairID == nil || record.identity.pair?.pairID == pairID) && (leg == nil || record.identity.leg == leg)
            && (target == nil || record.identity.target == target) && (route == nil || record.identity.route == route)
    }
}
