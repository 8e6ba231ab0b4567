import NIOCore
import Synchronization
import VigilSupervisor

/// Proof that every event loop runs tasks: each loop stamps its own slot on a repeated task.
/// A loop stuck in a long computation (or a deadlock) stops stamping.
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
            slot.lastBeat.store(ServerClock.now().nanoseconds, ordering: .relaxed)
            return loop.scheduleRepeatedTask(initialDelay: .zero, delay: amount) { _ in
                slot.lastBeat.store(ServerClock.now().nanoseconds, ordering: .relaxed)
            }
        }
    }

    var lastBeats: [MonotonicInstant?] {
        slots.map { slot in
            let nanos = slot.lastBeat.load(ordering: .relaxed)
            return nanos == 0 ? nil : MonotonicInstant(nanoseconds: nanos)
        }
    }

    func stop() {
        tasks.forEach { $0.cancel() }
    }
}
