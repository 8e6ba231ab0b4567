import VigilSupervisor

/// Opens and closes per minute over the last hour, for the status page's charts.
///
/// Counts only: how many connections were open at the end of each minute follows from the
/// number open now, walking back through the opens and closes since (exact, with no gauge to
/// sample and no timer). Sixty buckets of fixed size, reused as the minutes turn.
struct ActivityHistory {
    static let minutes = 60

    struct Minute {
        /// Minutes since the registry started.
        var index: Int64
        var opened: UInt64 = 0
        var closesByKind = [UInt64](repeating: 0, count: CloseKind.allCases.count)
        var closesByCause = [UInt64](repeating: 0, count: CloseCause.allCases.count)
    }

    private var buckets = [Minute](repeating: Minute(index: -1), count: ActivityHistory.minutes)
    /// Connections open now, kept under the same lock as the buckets so that a report's walk
    /// back starts from a count consistent with them.
    private(set) var openNow = 0

    mutating func noteOpen(atMinute minute: Int64) {
        let slot = claim(minute)
        buckets[slot].opened += 1
        openNow += 1
    }

    /// An open that never became a connection (its pipeline could not be set up): taken back.
    mutating func noteAbandoned(openedAtMinute minute: Int64) {
        openNow -= 1
        let slot = Int(minute % Int64(Self.minutes))
        if buckets[slot].index == minute, buckets[slot].opened > 0 { buckets[slot].opened -= 1 }
    }

    mutating func noteClose(_ kind: CloseKind, _ cause: CloseCause, atMinute minute: Int64) {
        openNow -= 1
        let slot = claim(minute)
        buckets[slot].closesByKind[CloseKind.allCases.firstIndex(of: kind)!] += 1
        buckets[slot].closesByCause[CloseCause.allCases.firstIndex(of: cause)!] += 1
    }

    /// The slot of `minute`, emptied first if it still holds the minute an hour before.
    private mutating func claim(_ minute: Int64) -> Int {
        let slot = Int(minute % Int64(Self.minutes))
        if buckets[slot].index != minute { buckets[slot] = Minute(index: minute) }
        return slot
    }

    private subscript(minute: Int64) -> Minute {
        buckets[Int(minute % Int64(Self.minutes))]
    }

    /// The minutes from `max(0, now - 59)` to `now`, oldest first, each with the connections open
    /// at its end (or now, for the current minute).
    func report(nowMinute: Int64) -> [MinuteActivity] {
        var result: [MinuteActivity] = []
        var open = Int64(openNow)
        var minute = nowMinute
        while minute >= 0 && minute > nowMinute - Int64(Self.minutes) {
            let bucket = self[minute].index == minute ? self[minute] : Minute(index: minute)
            let closed = bucket.closesByKind.reduce(0, +)
            result.append(
                MinuteActivity(
                    minute: minute, openAtEnd: max(0, Int(open)), opened: bucket.opened,
                    closesByKind: Dictionary(uniqueKeysWithValues: zip(CloseKind.allCases, bucket.closesByKind)),
                    closesByCause: Dictionary(
                        uniqueKeysWithValues: zip(CloseCause.allCases, bucket.closesByCause).filter { $0.1 > 0 })))
            // Open at the end of the minute before = open at this one's end, less its opens, plus its closes.
            open = open - Int64(bucket.opened) + Int64(closed)
            minute -= 1
        }
        return result.reversed()
    }
}

/// One minute of `ConnectionRegistry.history`.
public struct MinuteActivity: Sendable, Hashable {
    /// Minutes since vigild started (0: the first).
    public var minute: Int64
    /// Connections open at the end of the minute (for the current one: now).
    public var openAtEnd: Int
    public var opened: UInt64
    public var closesByKind: [CloseKind: UInt64]
    /// Only the causes that occurred.
    public var closesByCause: [CloseCause: UInt64]
}
