import NIOConcurrencyHelpers
import Synchronization
import VigilSupervisor

/// Live connections, a bounded ring of recent closes and counters that never forget.
///
/// Safe from every event loop at once. The hot path (per message, per pong) touches only the
/// connection's own relaxed atomics; opening and closing take one of 16 shard locks (live
/// connections) and the close-log lock (closes), never a lock shared by every message.
public final class ConnectionRegistry: Sendable {
    public let maxConnections: Int
    public let metrics: RegistryMetrics

    private static let shardCount = 16
    private let shards: [Shard]
    private let nextID = Atomic<UInt64>(1)
    private let nextPairID = Atomic<UInt64>(1)
    /// Connections open or being opened (reserved before the upgrade completes).
    private let occupied = Atomic<Int>(0)
    private let log: NIOLockedValueBox<CloseLog>
    /// Who hears of each close as it is stored (`/closes/stream` readers), by subscription id.
    private let subscribers = NIOLockedValueBox<[UInt64: @Sendable (CloseRecord) -> Void]>([:])
    private let nextSubscription = Atomic<UInt64>(1)
    private let startedMonotonic: MonotonicInstant
    /// Opens and closes per minute over the last hour (the status page's charts).
    private let activity = NIOLockedValueBox(ActivityHistory())

    private final class Shard: Sendable {
        let connections = NIOLockedValueBox<[UInt64: LiveConnection]>([:])
    }

    /// - Parameters:
    ///   - maxConnections: how many connections may be open (or opening) at once.
    ///   - closeHistory: how many close records the ring keeps; counters cover all of them.
    ///   - now: the monotonic time at start, for the recent-closes window.
    public init(maxConnections: Int, closeHistory: Int, now: MonotonicInstant) {
        precondition(maxConnections > 0 && closeHistory > 0)
        self.maxConnections = maxConnections
        self.metrics = RegistryMetrics(maxConnections: maxConnections)
        self.shards = (0..<Self.shardCount).map { _ in Shard() }
        self.log = NIOLockedValueBox(CloseLog(capacity: closeHistory))
        self.startedMonotonic = now
    }

    // MARK: - Admission

    /// Takes a connection slot if one is free. Every `true` must be followed by one `release()`,
    /// when the connection that took it is gone (its socket closed): slots count connections,
    /// entries (`open`, `close`) describe them.
    public func reserve() -> Bool {
        var current = occupied.load(ordering: .relaxed)
        while current < maxConnections {
            let (exchanged, original) = occupied.weakCompareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives back a slot taken with `reserve()`.
    public func release() {
        occupied.subtract(1, ordering: .relaxed)
    }

    /// A client's TLS handshake on the WebSocket listener failed.
    public func noteFailedTLSHandshake(_ reason: TLSHandshakeFailureReason) {
        metrics.countTLSFailure(reason)
    }

    /// The certificates the TLS listener serves now: the file and when it expires (seconds
    /// since the epoch), for `vigil_tls_certificate_not_after_seconds`.
    public func noteTLSCertificates(_ certificates: [(file: String, notValidAfter: Int)]) {
        metrics.setTLSCertificates(certificates)
    }

    /// A PROXY protocol header was read: `proxy` (believed), `local` (a health check) or
    /// `untrusted` (ignored).
    public func noteProxyHeader(_ result: String) {
        metrics.countProxyHeader(result)
    }

    /// A reload kept the running TLS certificates: a new file was bad.
    public func noteTLSCertificateReloadFailure() {
        metrics.countTLSCertificateReloadFailure()
    }

    /// Counts a refused handshake.
    public func noteRejectedHandshake(_ reason: HandshakeRejectionReason) {
        metrics.countRejection(reason)
    }

    // MARK: - Lifecycle

    /// A fresh id for a proxied pair.
    public func makePairID() -> UInt64 {
        nextPairID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Registers an upgraded connection. (A client leg's `max_connections` slot is taken with
    /// `reserve()` by whoever accepted it; upstream legs and targets take none.)
    public func open(
        _ identity: ConnectionIdentity, at now: MonotonicInstant, wallClock: Timestamp = .now()
    ) -> LiveConnection {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let connection = LiveConnection(id: id, identity: identity, openedAt: wallClock, openedMonotonic: now)
        shard(for: id).connections.withLockedValue { $0[id] = connection }
        let minute = (now - startedMonotonic).components.seconds / 60
        activity.withLockedValue { $0.noteOpen(atMinute: minute) }
        metrics.opened[identity.leg].increment()
        metrics.active[identity.leg].increment()
        return connection
    }

    /// Moves a connection from the live set to the close log.
    @discardableResult
    public func close(
        _ connection: LiveConnection, outcome: CloseOutcome, at now: MonotonicInstant, wallClock: Timestamp = .now()
    ) -> CloseRecord {
        let removed = shard(for: connection.id).connections.withLockedValue { $0.removeValue(forKey: connection.id) }
        precondition(removed != nil, "connection \(connection.id) closed twice or never opened")
        let snapshot = connection.snapshot()
        let record = CloseRecord(
            id: connection.id, identity: connection.identity, outcome: outcome, openedAt: connection.openedAt,
            closedAt: wallClock,
            duration: now - MonotonicInstant(nanoseconds: connection.openedMonotonic),
            lastRoundTrip: snapshot.roundTrip, lastAppRoundTrip: snapshot.appRoundTrip, messagesIn: snapshot.messagesIn,
            messagesOut: snapshot.messagesOut, compressedIn: snapshot.compressedIn,
            compressedOut: snapshot.compressedOut)
        let second = (now - startedMonotonic).components.seconds
        let stored = log.withLockedValue { $0.append(record, atSecond: second) }
        activity.withLockedValue { $0.noteClose(outcome.kind, outcome.cause, atMinute: second / 60) }
        metrics.countClose(outcome, leg: connection.identity.leg)
        if let target = connection.identity.target { metrics.targets.countClose(target: target, outcome) }
        metrics.active[connection.identity.leg].decrement()
        for subscriber in subscribers.withLockedValue({ Array($0.values) }) { subscriber(stored) }
        return stored
    }

    /// Calls `subscriber` with every close record stored from now on, on the closing
    /// connection's thread (so it must only hand the record on). Returns the id to unsubscribe with.
    public func subscribe(_ subscriber: @escaping @Sendable (CloseRecord) -> Void) -> UInt64 {
        let id = nextSubscription.wrappingAdd(1, ordering: .relaxed).oldValue
        subscribers.withLockedValue { $0[id] = subscriber }
        return id
    }

    public func unsubscribe(_ id: UInt64) {
        _ = subscribers.withLockedValue { $0.removeValue(forKey: id) }
    }

    /// Takes back an entry whose connection never became supervised (its pipeline could not be
    /// set up): no close record, counted as a refused handshake (`setup_failed`).
    public func abandon(_ connection: LiveConnection) {
        let removed = shard(for: connection.id).connections.withLockedValue { $0.removeValue(forKey: connection.id) }
        guard removed != nil else { return }
        let minute =
            (MonotonicInstant(nanoseconds: connection.openedMonotonic) - startedMonotonic).components.seconds / 60
        activity.withLockedValue { $0.noteAbandoned(openedAtMinute: minute) }
        metrics.active[connection.identity.leg].decrement()
        metrics.countRejection(.setupFailed)
    }

    /// Records a ping round trip in its leg's histogram.
    public func noteRoundTrip(_ roundTrip: Duration, leg: ConnectionLeg) {
        metrics.roundTrip[leg].record(roundTrip)
    }

    /// Records an application-level round trip in its histogram.
    public func noteAppRoundTrip(_ roundTrip: Duration) {
        metrics.appRoundTrip.record(roundTrip)
    }

    // MARK: - Queries

    /// How many connections are open (upgraded and not yet closed).
    public var activeCount: Int {
        shards.reduce(0) { sum, shard in sum + shard.connections.withLockedValue { $0.count } }
    }

    /// Every live connection, oldest first.
    public func connections() -> [ConnectionSnapshot] {
        connections(after: nil, limit: .max).page
    }

    /// Open connections in id order (oldest first), from after id `after` (all when `nil`), at
    /// most `limit`, of `route` only when given; and how many such are open in all. Only the
    /// page is snapshotted.
    public func connections(after: UInt64?, limit: Int, route: String? = nil) -> (
        count: Int, page: [ConnectionSnapshot]
    ) {
        var count = 0
        var candidates: [LiveConnection] = []
        let floor = after ?? 0
        for shard in shards {
            shard.connections.withLockedValue { connections in
                guard let route else {
                    count += connections.count
                    for (id, connection) in connections where after == nil || id > floor {
                        candidates.append(connection)
                    }
                    return
                }
                for (id, connection) in connections where connection.identity.route == route {
                    count += 1
                    if after == nil || id > floor { candidates.append(connection) }
                }
            }
        }
        let page = candidates.lazy.sorted { $0.id < $1.id }.prefix(limit).map { $0.snapshot() }
        return (count, Array(page))
    }

    public func connection(id: UInt64) -> ConnectionSnapshot? {
        shard(for: id).connections.withLockedValue { $0[id] }?.snapshot()
    }

    /// Close records matching `filter`, newest first, from before sequence number `before`, at
    /// most `limit`; `matched` counts all retained records that match.
    public func closes(
        matching filter: CloseFilter = CloseFilter(), before: UInt64? = nil, limit: Int
    ) -> (matched: Int, records: [CloseRecord]) {
        log.withLockedValue { $0.query(filter, before: before, limit: limit) }
    }

    public func summary(at now: MonotonicInstant) -> CloseSummary {
        let second = (now - startedMonotonic).components.seconds
        return log.withLockedValue { log in
            CloseSummary(
                total: log.total, retained: log.total - log.evicted, evicted: log.evicted,
                byKind: log.byKind, byCause: log.byCause, lastMinuteByKind: log.recentByKind(nowSecond: second))
        }
    }

    /// The last hour minute by minute (fewer minutes while vigild is younger), oldest first;
    /// `startedAt` converts minute numbers to wall-clock times.
    public func history(at now: MonotonicInstant, wallClock: Timestamp = .now()) -> (
        startedAt: Timestamp, minutes: [MinuteActivity]
    ) {
        let elapsed = now - startedMonotonic
        let minutes = activity.withLockedValue { $0.report(nowMinute: elapsed.components.seconds / 60) }
        return (Timestamp(nanosecondsSinceEpoch: wallClock.nanosecondsSinceEpoch - elapsed.inNanoseconds), minutes)
    }

    private func shard(for id: UInt64) -> Shard {
        shards[Int(id % UInt64(Self.shardCount))]
    }
}

/// Cumulative close counters.
public struct CloseSummary: Sendable {
    /// Every close recorded since start.
    public var total: UInt64
    /// How many of those the ring still holds.
    public var retained: UInt64
    /// How many fell off the ring (still counted everywhere else).
    public var evicted: UInt64
    public var byKind: [CloseKind: UInt64]
    public var byCause: [CloseCause: UInt64]
    /// Closes per kind in the last 60 seconds.
    public var lastMinuteByKind: [CloseKind: UInt64]
}
