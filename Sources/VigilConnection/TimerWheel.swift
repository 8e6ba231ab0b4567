import NIOConcurrencyHelpers
import NIOCore
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
/// round): both O(1). One NIO task per loop wakes the wheel at the next tick that has a timer in
/// its slot, never on a tick with nothing to do: an idle or lightly loaded daemon does not wake
/// (one `epoll_wait`, one timerfd read and re-arm each) a hundred times a second per loop.
/// Timers fire at their tick's boundary: never early, at most one tick (10 ms) late.
///
/// Not thread-safe: each wheel is confined to its event loop.
public final class TimerWheel {
    private struct Entry {
        /// Weak: a connection that closed is freed at once, not held until its deadline comes round.
        weak var target: (any WheelTimerTarget)?
        let token: UInt64
        let dueTick: Int64
    }

    /// Deadlines are rounded up to a whole tick (fuzz targets start each input on one, so that
    /// they round the same whatever ran before).
    public static let tick = Duration.milliseconds(10)
    /// 1024 slots of 10 ms: one revolution is about 10 s; later deadlines wait in their slot.
    private static let slotCount = 1024

    private let eventLoop: any EventLoop
    private let clock: ConnectionClock
    private let tickNanos: Int64
    private var slots: [[Entry]]
    /// The last tick whose slot has been fired: new timers go at least one tick after it.
    private var lastTick: Int64
    private var pending = 0
    /// The tick the loop will wake the wheel at, and the task that does it; nil when none is set.
    private var wake: (tick: Int64, task: Scheduled<Void>)?
    /// The slot being fired, swapped out of the wheel (see `fire`).
    private var firing: [Entry] = []
    /// True while firing: timers set by the callbacks wait for the one wake computed after them.
    private var advancing = false
    /// How often the wheel has woken (tests check that an idle wheel sleeps).
    private(set) var wakeCount = 0

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
        slots[slot(of: due)].append(Entry(target: target, token: token, dueTick: due))
        pending += 1
        guard !advancing else { return }
        if let wake {
            guard due < wake.tick else { return }  // the wheel wakes in time for it already
            wake.task.cancel()
        }
        wakeUp(at: due)
    }

    private func slot(of tick: Int64) -> Int { Int(tick % Int64(Self.slotCount)) }

    private func wakeUp(at tick: Int64) {
        let task = eventLoop.assumeIsolated().scheduleTask(
            deadline: .uptimeNanoseconds(UInt64(max(0, tick * tickNanos)))
        ) {
            self.advance()
        }
        wake = (tick, task)
    }

    private func advance() {
        wake = nil
        wakeCount += 1
        let nowTick = clock.now().nanoseconds / tickNanos
        // After a long stall one pass over every slot is enough: each entry compares its own due tick.
        let steps = min(nowTick - lastTick, Int64(Self.slotCount))
        let firstTick = nowTick - steps + 1
        // Moved first, so that a timer a callback sets (even one already past) lands in a slot
        // still to come, not in one this pass has left behind.
        lastTick = max(lastTick, nowTick)
        advancing = true
        if steps > 0 {
            for tick in firstTick...nowTick { fire(slot: slot(of: tick), upTo: nowTick) }
        }
        advancing = false
        if pending > 0, let next = nextOccupiedTick() { wakeUp(at: next) }
    }

    /// The first tick after `lastTick` whose slot holds an entry (which may still be a revolution
    /// away: the wheel then wakes, finds nothing due, and looks again).
    private func nextOccupiedTick() -> Int64? {
        for offset in 1...Int64(Self.slotCount) where !slots[slot(of: lastTick + offset)].isEmpty {
            return lastTick + offset
        }
        return nil
    }

    private func fire(slot index: Int, upTo nowTick: Int64) {
        guard !slots[index].isEmpty else { return }
        // Take the slot out first: callbacks may set new timers, even in this very slot. It is
        // swapped with an empty array that keeps its storage, so that neither the slot nor the
        // spare allocates again once they have grown to the load.
        swap(&firing, &slots[index])
        for entry in firing {
            if entry.dueTick > nowTick {
                slots[index].append(entry)  // a later revolution
            } else {
                pending -= 1
                entry.target?.wheelTimerFired(token: entry.token)
            }
        }
        firing.removeAll(keepingCapacity: true)
    }
}

/// One wheel per event loop, created on first use; each is used only on its own loop.
public final class TimerWheels: Sendable {
    private let wheels = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<TimerWheel>]>([:])
    /// What the wheels tick by; the connections timed on them read the same clock.
    public let clock: ConnectionClock

    /// - Parameter clock: what the wheels tick by: the system's, or an `EmbeddedEventLoop`'s in
    ///   tests and fuzz targets, which must agree with the clock of the connections they time.
    public init(clock: ConnectionClock = .system) {
        self.clock = clock
    }

    /// The wheel of `eventLoop`. Call on that loop.
    public func wheel(for eventLoop: any EventLoop) -> TimerWheel {
        let key = ObjectIdentifier(eventLoop)
        let bound = wheels.withLockedValue { wheels in
            if let existing = wheels[key] { return existing }
            let created = NIOLoopBound(TimerWheel(eventLoop: eventLoop, clock: clock), eventLoop: eventLoop)
            wheels[key] = created
            return created
        }
        return bound.value
    }
}
