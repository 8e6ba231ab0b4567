import NIOCore
import NIOWebSocket
import Testing
import VigilClient
import VigilRegistry
import VigilSupervisor

@Suite("Messages, heartbeats and admission over real sockets", .timeLimit(.minutes(1)))
struct ConnectionPipelineTests {
    @Test("echo mode returns text, binary and fragmented messages unchanged; many on one connection")
    func echo() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        for index in 0..<200 {
            try await client.send(text: "message \(index) ✓")
            #expect(await client.nextEvent() == .text("message \(index) ✓"))
        }
        try await client.send(binary: [0, 1, 2, 255])
        #expect(await client.nextEvent() == .binary([0, 1, 2, 255]))
        try await client.send(
            frame: WebSocketFrame(fin: false, opcode: .text, maskKey: .random(), data: ByteBuffer(string: "frag")))
        try await client.send(
            frame: WebSocketFrame(
                fin: true, opcode: .continuation, maskKey: .random(), data: ByteBuffer(string: "mented")))
        #expect(await client.nextEvent() == .text("fragmented"))
        let live = try #require(t.registry.connections().first)
        #expect(live.messagesIn == 202 && live.messagesOut == 202)
        #expect(t.registry.closes(limit: 1).matched == 0, "no close while the conversation goes on")
        await t.stop()
    }

    @Test("command mode answers requests and explains bad ones without closing")
    func command() async throws {
        let t = try await TestServer.start(["mode": "command"])
        let client = try await t.connect()
        try await client.send(text: #"{"requestID": 7, "command": "status"}"#)
        guard case .text(let reply) = await client.nextEvent() else {
            Issue.record("no reply")
            return
        }
        #expect(
            reply.contains(#""requestID":7"#) && reply.contains(#""success":true"#)
                && reply.contains(#"command 'status' processed"#))
        try await client.send(text: "not json")
        guard case .text(let error) = await client.nextEvent() else {
            Issue.record("no reply")
            return
        }
        #expect(
            error.contains(#""requestID":null"#) && error.contains(#""success":false"#)
                && error.contains("not valid JSON"))
        try await client.send(text: #"{"command": "x"}"#)
        guard case .text(let missing) = await client.nextEvent() else {
            Issue.record("no reply")
            return
        }
        #expect(missing.contains(#"missing \"requestID\""#))
        #expect(t.registry.activeCount == 1)
        await t.stop()
    }

    @Test("pings carry their payload; the matching pong yields an RTT visible in the registry")
    func heartbeat() async throws {
        let t = try await TestServer.start(["ping_interval": "50ms"])
        let client = try await t.connect()
        let first = await client.nextEvent()
        guard case .ping(let payload) = first else {
            Issue.record("expected a ping, got \(String(describing: first))")
            return
        }
        #expect(payload.count == 8, "an 8-byte payload of vigild's own")
        try await Task.sleep(for: .milliseconds(30))
        let live = try #require(t.registry.connections().first)
        #expect(live.pingsSent >= 1 && live.pongsReceived >= 1)
        #expect(live.roundTrip != nil)
        let metrics = String(decoding: t.registry.metrics.exposition(), as: UTF8.self)
        #expect(metrics.contains(#"vigil_ping_rtt_seconds_count{leg="client"} "#))
        #expect(!metrics.contains(#"vigil_ping_rtt_seconds_count{leg="client"} 0"#))
        await t.stop()
    }

    @Test("client pings are answered with pongs carrying the same payload")
    func clientPing() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.ping([9, 8, 7])
        #expect(await client.nextEvent() == .pong([9, 8, 7]))
        await t.stop()
    }

    @Test("over max_connections the handshake is refused and counted; existing connections stay")
    func capacity() async throws {
        let t = try await TestServer.start(["max_connections": "1"])
        let first = try await t.connect()
        await #expect { try await t.connect() } throws: { refusalStatus($0) == 503 }
        try await first.send(text: "still here")
        #expect(await first.nextEvent() == .text("still here"))
        let metrics = String(decoding: t.registry.metrics.exposition(), as: UTF8.self)
        #expect(metrics.contains(#"vigil_handshakes_rejected_total{reason="capacity"} 1"#))
        await first.closeTransport()
        _ = try await t.closes()
        _ = try await t.connect()  // the slot came back
        await t.stop()
    }

    @Test("a client name that is too long is refused; a valid one is carried")
    func clientName() async throws {
        let t = try await TestServer.start()
        await #expect {
            try await t.connect("/ws?client=" + String(repeating: "x", count: 65))
        } throws: { refusalStatus($0) == 400 }
        _ = try await t.connect("/ws?client=kiosk%203")
        #expect(t.registry.connections().first?.identity.client == "kiosk 3")
        await t.stop()
    }

    @Test("exactly one record per connection across many concurrent clients and endings")
    func manyConnections() async throws {
        let t = try await TestServer.start()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<60 {
                group.addTask {
                    let client = try await t.connect("/ws?client=c\(index)")
                    try await client.send(text: "hi")
                    _ = await client.nextEvent()
                    switch index % 3 {
                    case 0:
                        try await client.close(code: 1000)
                        _ = await client.remainingEvents()
                    case 1: await client.closeTransport()
                    default: await client.reset()
                    }
                }
            }
            try await group.waitForAll()
        }
        let records = try await t.closes(count: 60)
        #expect(records.count == 60)
        #expect(Set(records.map(\.id)).count == 60)
        #expect(Set(records.compactMap(\.identity.client)).count == 60)
        let summary = t.registry.summary(at: MonotonicInstant(nanoseconds: 0))
        #expect(summary.byKind[.normal] == 20 && summary.byKind[.eof] == 20 && summary.byCause[.reset] == 20)
        #expect(t.registry.activeCount == 0)
        await t.stop()
    }
}
