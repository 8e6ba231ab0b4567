import NIOCore
import NIOConcurrencyHelpers
import VigilSupervisor

/// Something a `TimerWheel` calls back when its deadline comes.
public protocol WheelTimerTarget: AnyObject {
    /// `token` is the one given when the timer was set; a target ignores tokens it replaced.
    func wheelTimerFired(token: UInt64)
}

/// The deadlines of one event loop's connections, in a hashed timing wheel.
///
/// NIO keeps scheduled tasks in a heap; cancelling one (which a connection does whenever a pong
/// moves its next deadline earlier) searches the heap, so with thousands of connections per loop
/// timer upkeep dominated the heartbeat's CPU. Here setting a timer appends to a slot and
/// replacing one just bumps the owner's token (the stale entry is skipped when its slot comes
/// round): both O(1). One NIO task per loop ticks every `tick` while any timer is set. Timers
/// fire at most one tick late.
///
/// Not thread-safe: each wheel is confined to its event loop.
public final class TimerWheel {
    private struct Entry {
        /// Weak: a connection that closed is freed at once, not held until its deadline comes round.
        weak var target: (any WheelTimerTarget)?
        let token: UInt64
        let dueTick: Int64
    }

    static let tick = Duration.milliseconds(10)
    /// 1024 slots of 10 ms: one revolution is about 10 s; later deadlines wait in their slot.
    private static let slotCount = 1024

    private let eventLoop: any EventLoop
    private let clock: ConnectionClock
    private let tickNanos: Int64
    private var slots: [[Entry]]
    private var lastTick: Int64
    private var pending = 0
    private var ticking = false

    public init(eventLoop: any EventLoop, clock: ConnectionClock = .system) {
        self.eventLoop = eventLoop
        self.clock = clock
        self.tickNanos = Self.tick.inNanoseconds
        self.slots = Array(repeating: [], count: Self.slotCount)
        self.lastTick = clock.now().nanoseconds / tickNanos
    }

    /// Calls `target.wheelTimerFired(token:)` at `deadline` (rounded up to the next tick).
    public func schedule(_ target: any WheelTimerTarget, token: UInt64, at deadline: MonotonicInstant) {
        eventLoop.preconditionInEventLoop()
        let due = max((deadline.nanoseconds + tickNanos - 1) / tickNanos, lastTick + 1)
        slots[Int(due % Int64(Self.slotCount))].append(Entry(target: target, token: token, dueTick: due))
        pending += 1
        if !ticking { startTicking() }
    }

    private func startTicking() {
        ticking = true
        eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(tickNanos)) { self.advance() }
    }

    private func advance() {
        let nowTick = clock.now().nanoseconds / tickNanos
        // After a long stall one pass over every slot is enough: each entry compares its own due tick.
        let steps = min(nowTick - lastTick, Int64(Self.slotCount))
        if steps > 0 {
            for step in 1...steps {
                fire(slot: Int((nowTick - steps + step) % Int64(Self.slotCount)), upTo: nowTick)
            }
        }
        lastTick = nowTick
        if pending > 0 {
            eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(tickNanos)) { self.advance() }
        } else {
            ticking = false
        }
    }

    private func fire(slot index: Int, upTo nowTick: Int64) {
        guard !slots[index].isEmpty else { return }
        // Take the slot out first: callbacks may set new timers, even in this very slot.
        let entries = slots[index]
        slots[index] = []
        for entry in entries {
            if entry.dueTick > nowTick {
                slots[index].append(entry)  // a later revolution
            } else {
                pending -= 1
                entry.target?.wheelTimerFired(token: entry.token)
            }
        }
    }
}

/// One wheel per event loop, created on first use; each is used only on its own loop.
public final class TimerWheels: Sendable {
    private let wheels = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<TimerWheel>]>([:])

    public init() {}

    /// The wheel of `eventLoop`. Call on that loop.
    public func wheel(for eventLoop: any EventLoop) -> TimerWheel {
        let key = ObjectIdentifier(eventLoop)
        let bound = wheels.withLockedValue { wheels in
            if let existing = wheels[key] { return existing }
            let created = NIOLoopBound(TimerWheel(eventLoop: eventLoop), eventLoop: eventLoop)
            wheels[key] = created
            return created
        }
        return bound.value
    }
}
