import Logging
import NIOConcurrencyHelpers
import Synchronization
import VigilConfig
import VigilRegistry
import VigilSupervisor
import VigilText

/// A proxy route's pool as the event loops share it: the `PoolBalancer` under a lock, its
/// members' series, and the log lines when a member goes down or comes back. One per route
/// name, kept across reloads (`reconfigure`), so health and pair counts survive them.
public final class UpstreamPool: Sendable {
    public let route: String
    private let balancer: NIOLockedValueBox<PoolBalancer>
    private let metrics: UpstreamMetrics
    private let logger: Logger
    /// Its route is gone: pairs that live on no longer move the series (a route of the same
    /// name added later has series of its own).
    private let retired = Atomic<Bool>(false)

    /// A member as a handshake tries it.
    public struct Candidate: Sendable, Hashable {
        public var name: String
        public var url: WebSocketURL
        /// Its last try failed (it rests, or its rest is over and it is being tried again).
        public var down: Bool
    }

    /// What one member looks like now: what `/routes` shows.
    public struct MemberState: Sendable {
        public var name: String
        public var url: WebSocketURL
        public var up: Bool
        public var pairs: Int
        public var drain: Bool
    }

    public init(route: RouteEntry, metrics: UpstreamMetrics, logger: Logger) {
        self.route = route.name
        self.balancer = NIOLockedValueBox(PoolBalancer(members: route.pool, policy: route.balance))
        self.metrics = metrics
        self.logger = logger
    }

    /// The members and policy of the route as configured now (at start, and at each reload):
    /// series for every member that takes pairs; none for members it drops (their pairs live
    /// on) or drains (a drained member is never tried, so its `up` would say nothing, and would
    /// hide a pool with no member up from `max by (route) (vigil_upstream_up)`).
    public func reconfigure(_ route: RouteEntry) {
        let old = balancer.withLockedValue { balancer in
            defer { balancer = balancer.reconfigured(route.pool, policy: route.balance) }
            return balancer.members
        }
        for member in old where !route.pool.contains(where: { $0.name == member.name && $0.url == member.url }) {
            metrics.remove(.init(route: self.route, name: member.name))
        }
        for member in route.pool {
            if member.drain {
                metrics.remove(.init(route: self.route, name: member.name))
            } else {
                metrics.add(.init(route: self.route, name: member.name))
            }
        }
        // A member kept down, or back from a drain, shows what is known of it.
        for member in members where !member.drain {
            metrics.setUp(.init(route: self.route, name: member.name), member.up)
            metrics.setPairs(.init(route: self.route, name: member.name), member.pairs)
        }
    }

    /// The route is gone: every member's series goes, and its pairs that live on are no longer
    /// counted.
    public func retire() {
        retired.store(true, ordering: .relaxed)
        for member in balancer.withLockedValue({ $0.members }) {
            metrics.remove(.init(route: route, name: member.name))
        }
    }

    public var members: [MemberState] {
        balancer.withLockedValue { balancer in
            balancer.members.map {
                MemberState(name: $0.name, url: $0.url, up: $0.up, pairs: $0.pairs, drain: $0.drain)
            }
        }
    }

    /// The members a new pair tries, in order.
    public func plan(at now: MonotonicInstant) -> [Candidate] {
        balancer.withLockedValue { balancer in
            balancer.plan(at: now).map { index in
                let member = balancer.members[index]
                return Candidate(name: member.name, url: member.url, down: !member.up)
            }
        }
    }

    /// A try of `candidate` begins: it counts as one of the member's pairs until the lease is
    /// given back (the try failed, or the pair's upstream leg closed). `nil` when a reload has
    /// since removed or drained the member: it takes no new pair.
    public func lease(_ candidate: Candidate) -> Lease? {
        guard takesPairs(candidate) else { return nil }
        update(candidate) { balancer, index in balancer.tryStarted(index) }
        return Lease(pool: self, candidate: candidate)
    }

    /// Whether the member is still configured, not drained, in a route that is not gone.
    public func takesPairs(_ candidate: Candidate) -> Bool {
        !retired.load(ordering: .relaxed)
            && balancer.withLockedValue { balancer in
                balancer.members.contains { $0.name == candidate.name && $0.url == candidate.url && !$0.drain }
            }
    }

    /// The member answered the handshake: 101 (`ok`) or an HTTP refusal (`refused`, passed on).
    public func answered(_ candidate: Candidate, result: String) {
        let member = UpstreamMetrics.Member(route: route, name: candidate.name)
        if !retired.load(ordering: .relaxed) { metrics.countTry(member, result: result) }
        var wasDown = false
        update(candidate) { balancer, index in wasDown = balancer.answered(index) }
        guard wasDown else { return }
        if !retired.load(ordering: .relaxed) { metrics.setUp(member, true) }
        logger.notice(
            "upstream \(candidate.name) of route \(route) is up again (\(candidate.url))",
            metadata: ["route": "\(route)", "upstream": "\(candidate.name)"])
    }

    /// A try failed without an answer: the member rests, logged (once per rest: a member that
    /// keeps failing is logged at most once per 30 s). `rests: false` counts the try only: a
    /// member that was given less than its try's time is not to blame for not answering in it.
    public func failed(
        _ candidate: Candidate, timedOut: Bool, because reason: String, at now: MonotonicInstant, rests: Bool = true
    ) {
        let member = UpstreamMetrics.Member(route: route, name: candidate.name)
        if !retired.load(ordering: .relaxed) { metrics.countTry(member, result: timedOut ? "timeout" : "failed") }
        guard rests else { return }
        var rest: Duration?
        update(candidate) { balancer, index in rest = balancer.failed(index, at: now) }
        // Tried while resting (every member was): said already.
        guard let rest else { return }
        if !retired.load(ordering: .relaxed) { metrics.setUp(member, false) }
        logger.warning(
            "upstream \(candidate.name) of route \(route) is down: \(candidate.url): \(reason); tried again after \(DurationText.setting(rest))",
            metadata: ["route": "\(route)", "upstream": "\(candidate.name)"])
    }

    fileprivate func release(_ candidate: Candidate) {
        update(candidate) { balancer, index in balancer.released(index) }
    }

    /// Runs `change` on the member, if a reload has not removed it, and updates its pairs series.
    private func update(_ candidate: Candidate, _ change: (inout PoolBalancer, Int) -> Void) {
        let pairs: Int? = balancer.withLockedValue { balancer in
            guard
                let index = balancer.members.firstIndex(where: { $0.name == candidate.name && $0.url == candidate.url })
            else { return nil }
            change(&balancer, index)
            return balancer.members[index].pairs
        }
        if let pairs, !retired.load(ordering: .relaxed) {
            metrics.setPairs(.init(route: route, name: candidate.name), pairs)
        }
    }

    /// One pair's claim on a member, given back once.
    public final class Lease: Sendable {
        private let pool: UpstreamPool
        private let candidate: Candidate
        private let held = Atomic<Bool>(true)

        fileprivate init(pool: UpstreamPool, candidate: Candidate) {
            self.pool = pool
            self.candidate = candidate
        }

        public func release() {
            if held.exchange(false, ordering: .relaxed) { pool.release(candidate) }
        }
    }
}
