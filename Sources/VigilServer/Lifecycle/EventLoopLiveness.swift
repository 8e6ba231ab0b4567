import NIOCore
import Synchronization
import VigilConnection
import VigilSupervisor

/// Proof that every event loop runs tasks: each loop stamps its own slot on a repeated task.
/// A loop stuck in a long computation (or a deadlock) stops stamping. It reads the system clock
/// whatever clock the connections are timed by: the service manager's watchdog counts real time.
final class EventLoopLiveness: Sendable {
    private final class Slot: Sendable {
        /// Monotonic nanoseconds of the last beat; 0 before the first.
        let lastBeat = Atomic<Int64>(0)
    }

    private let slots: [Slot]
    private let tasks: [RepeatedTask]

    init(group: any EventLoopGroup, beatEvery period: Duration) {
        let loops = Array(group.makeIterator())
        let slots = loops.map { _ in Slot() }
        let amount = TimeAmount.nanoseconds(max(period.inNanoseconds, 1_000_000))
        self.slots = slots
        self.tasks = zip(loops, slots).map { loop, slot in
            slot.lastBeat.store(ConnectionClock.system.now().nanoseconds, ordering: .relaxed)
            return loop.scheduleRepeatedTask(initialDelay: .zero, delay: amount) { _ in
                slot.lastBeat.store(ConnectionClock.system.now().nanoseconds, ordering: .relaxed)
            }
        }
    }

    /// How long ago each loop last beat; `nil` for a loop that never did.
    func beatAges(now: MonotonicInstant) -> [Duration?] {
        slots.map { slot in
            let nanos = slot.lastBeat.load(ordering: .relaxed)
            return nanos == 0 ? nil : now - MonotonicInstant(nanoseconds: nanos)
        }
    }

    func stop() {
        tasks.forEach { $0.cancel() }
    }
}
