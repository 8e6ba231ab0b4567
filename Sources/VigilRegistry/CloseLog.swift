import VigilSupervisor

/// The bounded ring of recent close records plus counters that never forget.
///
/// Not synchronised itself; `ConnectionRegistry` keeps it behind a lock.
struct CloseLog {
    private var ring: [CloseRecord] = []
    /// Where the next record goes once the ring is full.
    private var next = 0
    let capacity: Int

    private(set) var total: UInt64 = 0
    private(set) var byKind: [CloseKind: UInt64] = [:]
    private(set) var byCause: [CloseCause: UInt64] = [:]
    private var recent = RecentWindow()

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        ring.reserveCapacity(min(capacity, 1024))
    }

    /// Records that fell off the ring (still counted above).
    var evicted: UInt64 { total - UInt64(ring.count) }

    /// Stores `record` and returns it with its sequence number.
    @discardableResult
    mutating func append(_ record: CloseRecord, atSecond second: Int64) -> CloseRecord {
        var record = record
        record.sequence = total + 1
        if ring.count < capacity {
            ring.append(record)
        } else {
            ring[next] = record
            next = (next + 1) % capacity
        }
        total += 1
        byKind[record.kind, default: 0] += 1
        byCause[record.cause, default: 0] += 1
        recent.add(record.kind, atSecond: second)
        return record
    }

    /// Matching records, newest first, from before sequence number `before` (all when `nil`),
    /// at most `limit`; and how many retained records match at all.
    func query(_ filter: CloseFilter, before: UInt64? = nil, limit: Int) -> (matched: Int, records: [CloseRecord]) {
        var matched = 0
        var records: [CloseRecord] = []
        records.reserveCapacity(min(limit, ring.count))
        // Newest first: walk back from the slot before `next` (or from the end while filling).
        let count = ring.count
        let newest = count < capacity ? count - 1 : (next - 1 + capacity) % capacity
        for step in 0..<count {
            let record = ring[(newest - step + count) % count]
            guard filter.matches(record) else { continue }
            matched += 1
            if records.count < limit && record.sequence < before ?? .max { records.append(record) }
        }
        return (matched, records)
    }

    func recentByKind(nowSecond: Int64) -> [CloseKind: UInt64] {
        recent.counts(nowSecond: nowSecond)
    }
}

/// Close counts per kind over the last 60 seconds, in one-second buckets.
struct RecentWindow {
    static let seconds = 60
    private var buckets = [(second: Int64, counts: [UInt64])](
        repeating: (-1, [UInt64](repeating: 0, count: CloseKind.allCases.count)), count: RecentWindow.seconds)

    mutating func add(_ kind: CloseKind, atSecond second: Int64) {
        let slot = Int(second % Int64(Self.seconds))
        if buckets[slot].second != second {
            buckets[slot] = (second, [UInt64](repeating: 0, count: CloseKind.allCases.count))
        }
        buckets[slot].counts[CloseKind.allCases.firstIndex(of: kind)!] += 1
    }

    func counts(nowSecond: Int64) -> [CloseKind: UInt64] {
        var result = Dictionary(uniqueKeysWithValues: CloseKind.allCases.map { ($0, UInt64(0)) })
        for bucket in buckets where bucket.second > nowSecond - Int64(Self.seconds) && bucket.second <= nowSecond {
            for (index, kind) in CloseKind.allCases.enumerated() { result[kind]! += bucket.counts[index] }
        }
        return result
    }
}
