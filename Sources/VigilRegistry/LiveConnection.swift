import Synchronization
import VigilSupervisor

/// One open WebSocket connection as the registry and the status API see it.
///
/// Its counters are relaxed atomics written only by the connection's own event loop and read by
/// the status API, so updating them on every message takes no lock.
public final class LiveConnection: Sendable {
    public let id: UInt64
    public let identity: ConnectionIdentity
    public let openedAt: Timestamp
    /// Monotonic nanoseconds at open; converts monotonic times to wall-clock ones.
    let openedMonotonic: Int64

    let lastSeenMonotonic: Atomic<Int64>
    /// Last ping round trip in nanoseconds; -1 before the first.
    let lastRoundTripNanos = Atomic<Int64>(-1)
    let pingsSent = Atomic<UInt64>(0)
    /// Last application-level round trip in nanoseconds; -1 before the first.
    let lastAppRoundTripNanos = Atomic<Int64>(-1)
    let appPingsSent = Atomic<UInt64>(0)
    let appPongsReceived = Atomic<UInt64>(0)
    let pongsReceived = Atomic<UInt64>(0)
    let messagesIn = Atomic<UInt64>(0)
    let messagesOut = Atomic<UInt64>(0)
    /// Of those, the ones that went over the wire compressed (permessage-deflate).
    let compressedIn = Atomic<UInt64>(0)
    let compressedOut = Atomic<UInt64>(0)
    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)

    init(id: UInt64, identity: ConnectionIdentity, openedAt: Timestamp, openedMonotonic: MonotonicInstant) {
        self.id = id
        self.identity = identity
        self.openedAt = openedAt
        self.openedMonotonic = openedMonotonic.nanoseconds
        self.lastSeenMonotonic = Atomic(openedMonotonic.nanoseconds)
    }

    // MARK: - Updates from the connection's event loop

    /// A frame of any kind arrived.
    public func noteSeen(at now: MonotonicInstant) {
        lastSeenMonotonic.store(now.nanoseconds, ordering: .relaxed)
    }

    public func noteMessageIn(bytes: Int) {
        messagesIn.add(1, ordering: .relaxed)
        bytesIn.add(UInt64(bytes), ordering: .relaxed)
    }

    public func noteMessageOut(bytes: Int) {
        messagesOut.add(1, ordering: .relaxed)
        bytesOut.add(UInt64(bytes), ordering: .relaxed)
    }

    public func noteCompressedIn() {
        compressedIn.add(1, ordering: .relaxed)
    }

    public func noteCompressedOut() {
        compressedOut.add(1, ordering: .relaxed)
    }

    public func notePingSent() {
        pingsSent.add(1, ordering: .relaxed)
    }

    public func notePongReceived(roundTrip: Duration?) {
        pongsReceived.add(1, ordering: .relaxed)
        if let roundTrip {
            lastRoundTripNanos.store(roundTrip.inNanoseconds, ordering: .relaxed)
        }
    }

    public func noteAppPingSent() {
        appPingsSent.add(1, ordering: .relaxed)
    }

    public func noteAppPongReceived(roundTrip: Duration) {
        appPongsReceived.add(1, ordering: .relaxed)
        lastAppRoundTripNanos.store(roundTrip.inNanoseconds, ordering: .relaxed)
    }

    /// A consistent-enough copy for reports (each field is read atomically on its own).
    public func snapshot() -> ConnectionSnapshot {
        let rtt = lastRoundTripNanos.load(ordering: .relaxed)
        let appRTT = lastAppRoundTripNanos.load(ordering: .relaxed)
        let seen = lastSeenMonotonic.load(ordering: .relaxed)
        return ConnectionSnapshot(
            id: id, identity: identity, openedAt: openedAt,
            lastSeenAt: Timestamp(nanosecondsSinceEpoch: openedAt.nanosecondsSinceEpoch + (seen - openedMonotonic)),
            roundTrip: rtt < 0 ? nil : .nanoseconds(rtt),
            pingsSent: pingsSent.load(ordering: .relaxed), pongsReceived: pongsReceived.load(ordering: .relaxed),
            appRoundTrip: appRTT < 0 ? nil : .nanoseconds(appRTT), appPingsSent: appPingsSent.load(ordering: .relaxed),
            appPongsReceived: appPongsReceived.load(ordering: .relaxed),
            messagesIn: messagesIn.load(ordering: .relaxed), messagesOut: messagesOut.load(ordering: .relaxed),
            compressedIn: compressedIn.load(ordering: .relaxed), compressedOut: compressedOut.load(ordering: .relaxed),
            bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed))
    }
}

/// A point-in-time copy of a live connection's state.
public struct ConnectionSnapshot: Sendable, Hashable {
    public var id: UInt64
    public var identity: ConnectionIdentity
    public var openedAt: Timestamp
    public var lastSeenAt: Timestamp
    public var roundTrip: Duration?
    public var pingsSent: UInt64
    public var pongsReceived: UInt64
    /// The application-level heartbeat's (`app_ping_interval`), when it runs on this connection.
    public var appRoundTrip: Duration?
    public var appPingsSent: UInt64
    public var appPongsReceived: UInt64
    public var messagesIn: UInt64
    public var messagesOut: UInt64
    public var compressedIn: UInt64
    public var compressedOut: UInt64
    public var bytesIn: UInt64
    public var bytesOut: UInt64
}
