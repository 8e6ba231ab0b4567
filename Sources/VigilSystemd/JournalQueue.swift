import Dispatch
import Synchronization

/// Where journal entries wait to be written, so that no event loop ever blocks on the journal.
///
/// sd_journal_sendv(3) writes to a blocking datagram socket: once journald stops draining it
/// (stopped, or swamped) the socket's queue fills after a few hundred entries and every further
/// call blocks — on an event loop, that stalls every connection of the loop and, past half of
/// `WatchdogSec`, gets vigild killed with every live record lost. Entries are handed instead to one
/// serial queue, whose thread may block; at most `capacity` wait there, and what arrives beyond
/// that is counted and reported once the journal takes entries again. The registry, `/closes`
/// and `/metrics` never wait for any of it.
public final class JournalQueue: Sendable {
    public static let shared = JournalQueue(capacity: 20_000)

    public let capacity: Int
    private let queue = DispatchQueue(label: "vigil.journal")
    private let waiting = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Runs `write` on the journal's thread, or counts the entry as dropped when `capacity`
    /// entries are already waiting. `reportDrops` is called on that thread, before the next
    /// entry written after some were dropped, with their number.
    func submit(_ write: @escaping @Sendable () -> Void, reportDrops: @escaping @Sendable (Int) -> Void) {
        guard waiting.wrappingAdd(1, ordering: .relaxed).newValue <= capacity else {
            waiting.subtract(1, ordering: .relaxed)
            dropped.add(1, ordering: .relaxed)
            return
        }
        queue.async { [self] in
            let lost = dropped.exchange(0, ordering: .relaxed)
            if lost > 0 { reportDrops(lost) }
            write()
            waiting.subtract(1, ordering: .relaxed)
        }
    }

    /// Waits (up to `timeout`) until every entry submitted so far is written: at exit.
    public func flush(timeout: Duration) -> Bool {
        let done = DispatchSemaphore(value: 0)
        queue.async { done.signal() }
        return done.wait(timeout: .now() + .nanoseconds(Int(timeout.inNanosecondsClamped))) == .success
    }
}

extension Duration {
    fileprivate var inNanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        return seconds > Int64.max / 1_000_000_000 ? Int64.max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
