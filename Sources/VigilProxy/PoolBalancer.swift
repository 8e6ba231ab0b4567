import VigilConfig
import VigilSupervisor

/// Which member of a proxy route's pool a new pair tries first, and which next when a try
/// fails (passive health: a member that refused, reset or timed out rests for a while).
/// Sans-IO: a plain value, told the time and what each try did; `UpstreamPool` holds it
/// under a lock for the event loops.
///
/// | event | effect |
/// |---|---|
/// | a try fails (TCP, TLS, no valid answer, timeout) | the member is down for 1 s, doubled for each failure in a row, at most 30 s |
/// | its rest is over | it is tried again like any other member; a failure rests it longer |
/// | a try succeeds, or the member answers with an HTTP refusal | it is up, its failures forgotten |
/// | every member is down | they are tried anyway, the one back soonest first (a failure then changes nothing): a member that is back is found at once |
///
/// `drain` members are never tried.
public struct PoolBalancer: Sendable {
    public struct Member: Sendable {
        public var name: String
        public var url: WebSocketURL
        public var drain: Bool
        /// Pairs open or being opened to it (`least_connections` counts these).
        public fileprivate(set) var pairs = 0
        /// Failed tries in a row.
        public fileprivate(set) var failures = 0
        /// While down: when it may be tried again.
        public fileprivate(set) var downUntil: MonotonicInstant?

        /// Whether the last try says it is up (a member resting, or past its rest but not
        /// tried since, is not).
        public var up: Bool { failures == 0 }
    }

    public private(set) var members: [Member]
    public var policy: BalancePolicy
    /// Where the next round-robin turn starts.
    private var cursor = 0

    /// The first rest after a failure, and the longest.
    public static let firstRest = Duration.seconds(1)
    public static let longestRest = Duration.seconds(30)

    public init(members: [PoolMember], policy: BalancePolicy) {
        self.members = members.map { Member(name: $0.name, url: $0.url, drain: $0.drain) }
        self.policy = policy
    }

    /// The pool after a reload: members kept by name and URL keep their health and pairs;
    /// new ones start up; a changed URL is a new member.
    public func reconfigured(_ members: [PoolMember], policy: BalancePolicy) -> PoolBalancer {
        var next = PoolBalancer(members: members, policy: policy)
        for index in next.members.indices {
            guard
                let old = self.members.first(where: { $0.name == members[index].name && $0.url == members[index].url })
            else { continue }
            next.members[index].pairs = old.pairs
            next.members[index].failures = old.failures
            next.members[index].downUntil = old.downUntil
        }
        next.cursor = members.isEmpty ? 0 : cursor % members.count
        return next
    }

    /// The members to try for a new pair, in order: those not resting (by the policy), then the
    /// resting ones, back soonest first. Takes a round-robin turn.
    public mutating func plan(at now: MonotonicInstant) -> [Int] {
        let count = members.count
        guard count > 0 else { return [] }
        let rotation = (0..<count).map { (cursor + $0) % count }.filter { !members[$0].drain }
        var ready = rotation.filter { members[$0].downUntil.map { $0 <= now } ?? true }
        let resting = rotation.filter { !ready.contains($0) }.sorted {
            members[$0].downUntil! < members[$1].downUntil!
        }
        if policy == .leastConnections {
            // A stable sort keeps the rotation's order among equals.
            ready = ready.enumerated().sorted { lhs, rhs in
                let (left, right) = (members[lhs.element].pairs, members[rhs.element].pairs)
                return left != right ? left < right : lhs.offset < rhs.offset
            }.map(\.element)
        }
        let order = ready + resting
        if let first = order.first { cursor = (first + 1) % count }
        return order
    }

    /// A try of `index` begins: it holds a pair until `released(_:)`.
    public mutating func tryStarted(_ index: Int) {
        members[index].pairs += 1
    }

    /// The pair `tryStarted` counted is gone (the try failed, or the pair ended).
    public mutating func released(_ index: Int) {
        members[index].pairs = max(0, members[index].pairs - 1)
    }

    /// The member answered (101, or an HTTP refusal): it is up. Returns whether it was down.
    public mutating func answered(_ index: Int) -> Bool {
        let wasDown = !members[index].up
        members[index].failures = 0
        members[index].downUntil = nil
        return wasDown
    }

    /// A try of `index` failed: how long it rests; `nil` when it was resting already (tried
    /// because every member was), which changes nothing.
    public mutating func failed(_ index: Int, at now: MonotonicInstant) -> Duration? {
        if let until = members[index].downUntil, until > now { return nil }
        members[index].failures += 1
        let doublings = min(members[index].failures - 1, 5)
        let rest = min(Self.firstRest * (1 << doublings), Self.longestRest)
        members[index].downUntil = now + rest
        return rest
    }
}
