import Testing
import VigilSupervisor

@testable import VigilRegistry

let t0 = MonotonicInstant(nanoseconds: 5_000_000_000)

func outcome(_ kind: CloseKind, _ cause: CloseCause) -> CloseOutcome {
    CloseOutcome(kind: kind, code: 1006, cause: cause, initiator: .remote, clean: false, reason: "")
}

@Suite("Connection registry")
struct ConnectionRegistryTests {
    @Test("admission stops at max connections; slots come back with release, not with close records")
    func admission() {
        let registry = ConnectionRegistry(maxConnections: 2, closeHistory: 10, now: t0)
        #expect(registry.reserve())
        #expect(registry.reserve())
        #expect(!registry.reserve())
        registry.release()
        #expect(registry.reserve())
        let connection = registry.open(ConnectionIdentity(peer: "127.0.0.1:1", client: nil, path: "/ws"), at: t0)
        registry.close(connection, outcome: outcome(.eof, .eof), at: t0)
        #expect(!registry.reserve(), "the record is not the socket: the slot is its owner's to give back")
        registry.release()
        #expect(registry.reserve())
        #expect(!registry.reserve())
    }

    @Test("a close record carries the connection's identity, counters and duration")
    func closeRecord() {
        let registry = ConnectionRegistry(maxConnections: 10, closeHistory: 10, now: t0)
        _ = registry.reserve()
        let opened = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
        let connection = registry.open(
            ConnectionIdentity(peer: "10.0.0.7:51234", client: "kiosk-3", path: "/ws"), at: t0, wallClock: opened)
        connection.noteMessageIn(bytes: 10)
        connection.noteMessageOut(bytes: 10)
        connection.notePongReceived(roundTrip: .milliseconds(3))
        connection.noteSeen(at: t0 + .seconds(2))
        let live = registry.connection(id: connection.id)
        #expect(live?.lastSeenAt == Timestamp(nanosecondsSinceEpoch: opened.nanosecondsSinceEpoch + 2_000_000_000))
        #expect(live?.roundTrip == .milliseconds(3))
        let record = registry.close(
            connection, outcome: outcome(.abnormal, .pongTimeout), at: t0 + .seconds(192),
            wallClock: Timestamp(nanosecondsSinceEpoch: opened.nanosecondsSinceEpoch + 192_000_000_000))
        #expect(record.duration == .seconds(192))
        #expect(record.identity.client == "kiosk-3")
        #expect(record.lastRoundTrip == .milliseconds(3))
        #expect(record.messagesIn == 1 && record.messagesOut == 1)
        #expect(registry.connection(id: connection.id) == nil)
        #expect(registry.activeCount == 0)
    }

    @Test("the ring keeps the newest records, newest first; counters never forget")
    func ringEviction() {
        let registry = ConnectionRegistry(maxConnections: 100, closeHistory: 3, now: t0)
        var ids: [UInt64] = []
        for index in 0..<5 {
            _ = registry.reserve()
            let connection = registry.open(ConnectionIdentity(peer: "p", client: "c\(index % 2)", path: "/ws"), at: t0)
            ids.append(connection.id)
            registry.close(
                connection, outcome: index == 4 ? outcome(.normal, .remoteClose) : outcome(.eof, .eof), at: t0)
        }
        let (matched, records) = registry.closes(limit: 10)
        #expect(matched == 3)
        #expect(records.map(\.id) == [ids[4], ids[3], ids[2]])
        let summary = registry.summary(at: t0)
        #expect(summary.total == 5 && summary.retained == 3 && summary.evicted == 2)
        #expect(summary.byKind[.eof] == 4 && summary.byKind[.normal] == 1)
        #expect(summary.byCause[.eof] == 4)
        #expect(registry.closes(matching: CloseFilter(kind: .eof), limit: 10).records.map(\.id) == [ids[3], ids[2]])
        #expect(registry.closes(matching: CloseFilter(client: "c0"), limit: 10).records.map(\.id) == [ids[4], ids[2]])
        #expect(registry.closes(matching: CloseFilter(kind: .eof), limit: 1).matched == 2)
    }

    @Test("pages: closes by sequence number before a cursor, connections by id after one")
    func pages() {
        let registry = ConnectionRegistry(maxConnections: 100, closeHistory: 10, now: t0)
        var open: [LiveConnection] = []
        for _ in 0..<8 {
            _ = registry.reserve()
            open.append(registry.open(ConnectionIdentity(peer: "p", client: nil, path: "/ws"), at: t0))
        }
        // Closed out of id order: the sequence numbers follow the closes, not the ids.
        for index in [5, 1, 7, 0, 3, 2] { registry.close(open[index], outcome: outcome(.eof, .eof), at: t0) }
        let all = registry.closes(limit: 10).records
        #expect(all.map(\.sequence) == [6, 5, 4, 3, 2, 1])
        #expect(all.map(\.id) == [2, 3, 0, 7, 1, 5].map { open[$0].id })
        #expect(registry.closes(before: 5, limit: 2).records.map(\.sequence) == [4, 3])
        #expect(registry.closes(before: 5, limit: 2).matched == 6)
        #expect(registry.closes(before: 1, limit: 10).records.isEmpty)
        let live = registry.connections(after: nil, limit: 1)
        #expect(live.count == 2 && live.page.map(\.id) == [open[4].id])
        #expect(registry.connections(after: open[4].id, limit: 5).page.map(\.id) == [open[6].id])
        #expect(registry.connections(after: open[6].id, limit: 5).page.isEmpty)
    }

    @Test("last-minute counts drop closes older than 60 s")
    func lastMinute() {
        let registry = ConnectionRegistry(maxConnections: 100, closeHistory: 100, now: t0)
        func close(at second: Int64) {
            _ = registry.reserve()
            let connection = registry.open(ConnectionIdentity(peer: "p", client: nil, path: "/ws"), at: t0)
            registry.close(connection, outcome: outcome(.abnormal, .reset), at: t0 + .seconds(second))
        }
        func lastMinute(at second: Int64) -> UInt64? {
            registry.summary(at: t0 + .seconds(second)).lastMinuteByKind[.abnormal]
        }
        close(at: 0)
        close(at: 30)
        close(at: 59)
        #expect(lastMinute(at: 59) == 3)
        #expect(lastMinute(at: 60) == 2, "the close at 0 s is a minute old")
        close(at: 61)
        close(at: 90)  // shares a bucket slot with 30 s
        #expect(lastMinute(at: 95) == 3)
        #expect(lastMinute(at: 500) == 0)
        #expect(registry.summary(at: t0 + .seconds(500)).total == 5)
    }

    @Test("history: opens and closes per minute, connections open at each minute's end, an hour back")
    func history() {
        let registry = ConnectionRegistry(maxConnections: 100, closeHistory: 100, now: t0)
        func open(at second: Int64) -> LiveConnection {
            _ = registry.reserve()
            return registry.open(ConnectionIdentity(peer: "p", client: nil, path: "/ws"), at: t0 + .seconds(second))
        }
        let a = open(at: 10)
        let b = open(at: 20)
        let c = open(at: 70)
        registry.close(a, outcome: outcome(.abnormal, .pongTimeout), at: t0 + .seconds(80))
        registry.close(b, outcome: outcome(.eof, .eof), at: t0 + .seconds(130))
        _ = open(at: 150)
        let minutes = registry.history(at: t0 + .seconds(170)).minutes
        #expect(minutes.map(\.minute) == [0, 1, 2])
        #expect(minutes.map(\.openAtEnd) == [2, 2, 2], "2 opened; 1 opened, 1 closed; 1 closed, 1 opened")
        #expect(minutes.map(\.opened) == [2, 1, 1])
        #expect(minutes[1].closesByKind[.abnormal] == 1 && minutes[1].closesByCause == [.pongTimeout: 1])
        #expect(minutes[2].closesByKind[.eof] == 1 && minutes[0].closesByCause.isEmpty)
        _ = c
        let never = open(at: 160)
        registry.abandon(never)  // its pipeline never came up: not a connection, not in the history
        #expect(registry.history(at: t0 + .seconds(170)).minutes.map(\.openAtEnd) == [2, 2, 2])
        #expect(registry.history(at: t0 + .seconds(170)).minutes.map(\.opened) == [2, 1, 1])
        // Two hours on: the last 60 minutes, all quiet, with what is open now carried back.
        let later = registry.history(at: t0 + .seconds(7200 + 5)).minutes
        #expect(later.count == 60 && later.first?.minute == 61 && later.last?.minute == 120)
        #expect(
            later.allSatisfy { $0.openAtEnd == 2 && $0.opened == 0 && $0.closesByKind.values.allSatisfy { $0 == 0 } })
    }

    @Test("concurrent opens and closes from many threads lose nothing")
    func concurrency() async {
        let registry = ConnectionRegistry(maxConnections: 100_000, closeHistory: 100_000, now: t0)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in 0..<2000 {
                        #expect(registry.reserve())
                        let connection = registry.open(
                            ConnectionIdentity(peer: "w\(worker)", client: nil, path: "/ws"), at: t0)
                        connection.noteMessageIn(bytes: 1)
                        registry.noteRoundTrip(.milliseconds(1), leg: .client)
                        _ = registry.connections().count
                        registry.close(
                            connection, outcome: index % 2 == 0 ? outcome(.eof, .eof) : outcome(.abnormal, .reset),
                            at: t0)
                    }
                }
            }
        }
        let summary = registry.summary(at: t0)
        #expect(summary.total == 16_000)
        #expect(summary.byKind[.eof] == 8000 && summary.byKind[.abnormal] == 8000)
        #expect(Set(registry.closes(limit: 100_000).records.map(\.id)).count == 16_000)
        #expect(registry.activeCount == 0)
        #expect(registry.reserve())
    }

    @Test("Prometheus exposition agrees with the counters")
    func metrics() throws {
        let registry = ConnectionRegistry(maxConnections: 10, closeHistory: 10, now: t0)
        for cause in [CloseCause.pongTimeout, .pongTimeout, .reset] {
            _ = registry.reserve()
            let connection = registry.open(ConnectionIdentity(peer: "p", client: nil, path: "/ws"), at: t0)
            registry.close(connection, outcome: outcome(.abnormal, cause), at: t0)
        }
        _ = registry.reserve()
        _ = registry.open(ConnectionIdentity(peer: "p", client: nil, path: "/ws"), at: t0)
        let upstream = registry.open(
            ConnectionIdentity(
                peer: "127.0.0.1:3000", path: "/ws", leg: .upstream,
                pair: PairLink(pairID: 1, upstream: "ws://b", route: "/", member: "upstream")),
            at: t0)
        registry.noteRoundTrip(.milliseconds(3), leg: .client)
        registry.noteRoundTrip(.milliseconds(2), leg: .upstream)
        registry.noteRoundTrip(.milliseconds(4), leg: .upstream)
        registry.close(upstream, outcome: outcome(.eof, .eof), at: t0)
        registry.noteRejectedHandshake(.capacity)
        let text = String(decoding: registry.metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"vigil_closes_total{kind="abnormal",cause="pong_timeout",leg="client"} 2"#))
        #expect(text.contains(#"vigil_closes_total{kind="abnormal",cause="reset",leg="client"} 1"#))
        #expect(text.contains(#"vigil_closes_total{kind="eof",cause="eof",leg="upstream"} 1"#))
        // Every leg's series from the start, so max_connections' client legs are told apart.
        #expect(text.contains(#"vigil_connections_opened_total{leg="client"} 4"#))
        #expect(text.contains(#"vigil_connections_opened_total{leg="upstream"} 1"#))
        #expect(text.contains(#"vigil_connections_opened_total{leg="target"} 0"#))
        #expect(text.contains(#"vigil_connections_active{leg="client"} 1"#))
        #expect(text.contains(#"vigil_connections_active{leg="upstream"} 0"#))
        #expect(text.contains(#"vigil_handshakes_rejected_total{reason="capacity"} 1"#))
        #expect(text.contains(#"vigil_ping_rtt_seconds_count{leg="client"} 1"#))
        #expect(text.contains(#"vigil_ping_rtt_seconds_count{leg="upstream"} 2"#))
    }

    @Test("timestamps print as RFC 3339 UTC with milliseconds")
    func timestamps() {
        #expect(Timestamp(nanosecondsSinceEpoch: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(nanosecondsSinceEpoch: 1_795_324_280_123_999_999).rfc3339 == "2026-11-22T05:11:20.123Z")
        #expect(Timestamp(nanosecondsSinceEpoch: -1_000_000).rfc3339 == "1969-12-31T23:59:59.999Z")
    }
}
