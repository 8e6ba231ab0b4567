import NIOCore
import NIOWebSocket
import Testing
import VigilClient
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// Every row of the close table, produced over real loopback sockets by the framing-core client
/// against a real server, and read back from the registry.
@Suite("Close table over real sockets", .timeLimit(.minutes(1)))
struct CloseClassificationPipelineTests {
    @Test("peer close 1000 → normal, echoed, clean")
    func peerNormal() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect("/ws?client=kiosk-3")
        try await client.close(code: 1000, reason: "bye")
        #expect(await client.remainingEvents().contains(.close(code: 1000, reason: "")))
        let record = try await t.closes()[0]
        #expect(record.outcome == outcome(.normal, 1000, .remoteClose, .remote, clean: true, reason: "bye"))
        #expect(record.identity.client == "kiosk-3")
        await t.stop()
    }

    @Test("peer close without status → normal/1005, answered with an empty close")
    func peerNoStatus() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.close(code: nil)
        #expect(await client.remainingEvents().contains(.close(code: nil, reason: "")))
        #expect(try await t.closes()[0].outcome == outcome(.normal, 1005, .remoteClose, .remote, clean: true))
        await t.stop()
    }

    @Test(
        "peer close 1001 → going_away; 4000 → error",
        arguments: [(UInt16(1001), CloseKind.goingAway), (4000, .error), (1011, .error)])
    func peerOther(code: UInt16, kind: CloseKind) async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.close(code: code, reason: "r")
        _ = await client.remainingEvents()
        #expect(try await t.closes()[0].outcome == outcome(kind, code, .remoteClose, .remote, clean: true, reason: "r"))
        await t.stop()
    }

    @Test("FIN between frames → eof")
    func eof() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.send(text: "one")
        #expect(await client.nextEvent() == .text("one"))
        await client.closeTransport()
        let record = try await t.closes()[0]
        #expect(record.outcome == outcome(.eof, 1006, .eof, .remote, clean: false))
        #expect(record.messagesIn == 1 && record.messagesOut == 1)
        await t.stop()
    }

    @Test("FIN in the middle of a frame → abnormal/truncated_frame")
    func truncated() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        // A masked text frame header announcing 100 bytes, followed by only 10.
        try await client.send(rawBytes: [0x81, 0x80 | 100, 1, 2, 3, 4] + Array(repeating: 0x41, count: 10))
        try await Task.sleep(for: .milliseconds(50))
        await client.closeTransport()
        #expect(try await t.closes()[0].outcome == outcome(.abnormal, 1006, .truncatedFrame, .remote, clean: false))
        await t.stop()
    }

    @Test("RST → abnormal/reset")
    func reset() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        await client.reset()
        #expect(try await t.closes()[0].outcome == outcome(.abnormal, 1006, .reset, .remote, clean: false))
        await t.stop()
    }

    @Test("no pong within T → abnormal/pong_timeout; the peer is told with 1008")
    func pongTimeout() async throws {
        let t = try await TestServer.start(["ping_interval": "100ms", "pong_timeout": "200ms"])
        var options = WebSocketClientOptions()
        options.answerPings = false
        let client = try await t.connect(options: options)
        let events = await client.remainingEvents()
        #expect(events.contains { if case .ping = $0 { true } else { false } })
        #expect(events.contains(.close(code: 1008, reason: "pong timeout")))
        let record = try await t.closes()[0]
        #expect(record.outcome == outcome(.abnormal, 1006, .pongTimeout, .local, clean: false))
        #expect(record.duration >= .milliseconds(300), "closed after \(record.duration): never before P + T")
        await t.stop()
    }

    @Test("no frame within R → abnormal/read_deadline")
    func readDeadline() async throws {
        let t = try await TestServer.start(["ping_interval": "0", "read_deadline": "200ms"])
        let client = try await t.connect()
        #expect(await client.remainingEvents().contains(.close(code: 1008, reason: "read deadline exceeded")))
        #expect(try await t.closes()[0].outcome == outcome(.abnormal, 1006, .readDeadline, .local, clean: false))
        await t.stop()
    }

    @Test(
        "protocol errors → error/1002, the connection failed at once (RFC 6455 §7.1.7)",
        arguments: [
            (
                "reserved bit",
                WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: "x")),
                "reserved bits set without a negotiated extension"
            ),
            (
                "unmasked", WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "x")),
                "unmasked client frame"
            ),
            (
                "unknown opcode",
                WebSocketFrame(
                    fin: true, opcode: WebSocketOpcode(encodedWebSocketOpcode: 0x3)!, maskKey: .random(),
                    data: ByteBuffer()), "unknown opcode 0x3"
            ),
            (
                "bad close code",
                WebSocketFrame(
                    fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer(bytes: [0x03, 0xED])),
                "invalid close code 1005"
            ),
        ])
    func protocolError(name: String, frame: WebSocketFrame, detail: String) async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.send(frame: frame)
        #expect(await client.remainingEvents().contains(.close(code: 1002, reason: detail)), "\(name)")
        #expect(
            try await t.closes()[0].outcome
                == outcome(.error, 1002, .protocolError, .local, clean: name == "bad close code", reason: detail))
        await t.stop()
    }

    @Test("control frame over 125 bytes → 1002 at once, not clean")
    func oversizedControl() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.send(rawBytes: [0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4] + Array(repeating: 0, count: 126))
        #expect(
            await client.remainingEvents().contains(.close(code: 1002, reason: "control frame longer than 125 bytes")))
        #expect(
            try await t.closes()[0].outcome
                == outcome(
                    .error, 1002, .protocolError, .local, clean: false, reason: "control frame longer than 125 bytes"))
        await t.stop()
    }

    @Test("invalid UTF-8 → error/1007/invalid_utf8")
    func invalidUTF8() async throws {
        let t = try await TestServer.start()
        let client = try await t.connect()
        try await client.send(
            frame: WebSocketFrame(
                fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: [0x41, 0xC0, 0xAF])))
        #expect(await client.remainingEvents().contains(.close(code: 1007, reason: "text message is not valid UTF-8")))
        #expect(
            try await t.closes()[0].outcome
                == outcome(.error, 1007, .invalidUTF8, .local, clean: false, reason: "text message is not valid UTF-8"))
        await t.stop()
    }

    @Test("message over max_message → error/1009/message_too_big")
    func messageTooBig() async throws {
        let t = try await TestServer.start(["max_frame": "1KiB", "max_message": "1KiB"])
        let client = try await t.connect()
        let half = ByteBuffer(repeating: 1, count: 600)
        try await client.send(frame: WebSocketFrame(fin: false, opcode: .binary, maskKey: .random(), data: half))
        try await client.send(frame: WebSocketFrame(fin: true, opcode: .continuation, maskKey: .random(), data: half))
        #expect(await client.remainingEvents().contains(.close(code: 1009, reason: "message exceeds 1024 bytes")))
        #expect(
            try await t.closes()[0].outcome
                == outcome(.error, 1009, .messageTooBig, .local, clean: false, reason: "message exceeds 1024 bytes"))
        await t.stop()
    }

    @Test("frame over max_frame → 1009 from the header alone")
    func frameTooBig() async throws {
        let t = try await TestServer.start(["max_frame": "1KiB"])
        let client = try await t.connect()
        try await client.send(binary: Array(repeating: 7, count: 2000))
        #expect(await client.remainingEvents().contains(.close(code: 1009, reason: "frame exceeds the size limit")))
        #expect(
            try await t.closes()[0].outcome
                == outcome(.error, 1009, .messageTooBig, .local, clean: false, reason: "frame exceeds the size limit"))
        await t.stop()
    }

    @Test("a peer that stops reading → abnormal/slow_consumer after the write timeout")
    func slowConsumer() async throws {
        let t = try await TestServer.start(["max_backlog": "256KiB", "ping_interval": "0", "write_timeout": "300ms"])
        let client = try await t.connect()
        try await client.setReading(false)
        let message = [UInt8](repeating: 0x5A, count: 32 * 1024)
        var sent = 0
        while t.registry.closes(limit: 1).matched == 0 && sent < 4000 {
            do {
                try await client.send(binary: message)
            } catch {
                break  // the server closed on us
            }
            sent += 1
        }
        let record = try await t.closes()[0]
        #expect(record.outcome == outcome(.abnormal, 1006, .slowConsumer, .local, clean: false))
        #expect(sent < 4000)
        await t.stop()
    }

    @Test("server shutdown → going_away/1001/shutdown, clean when answered")
    func shutdown() async throws {
        let t = try await TestServer.start()
        let clients = try await [t.connect("/ws?client=a"), t.connect("/ws?client=b")]
        await t.stop()
        for client in clients {
            #expect(await client.remainingEvents().contains(.close(code: 1001, reason: "vigild shutting down")))
        }
        let records = t.registry.closes(limit: 10).records
        #expect(records.count == 2)
        for record in records {
            #expect(
                record.outcome
                    == outcome(.goingAway, 1001, .shutdown, .local, clean: true, reason: "vigild shutting down"))
        }
        #expect(t.registry.activeCount == 0)
    }

    @Test("shutdown with a peer that does not answer → clean false after the close timeout")
    func shutdownUnanswered() async throws {
        let t = try await TestServer.start(["close_timeout": "200ms"])
        var options = WebSocketClientOptions()
        options.answerClose = false
        let client = try await t.connect(options: options)
        await t.stop()
        #expect(await client.remainingEvents().contains(.close(code: 1001, reason: "vigild shutting down")))
        #expect(
            t.registry.closes(limit: 1).records.first?.outcome
                == outcome(.goingAway, 1001, .shutdown, .local, clean: false, reason: "vigild shutting down"))
    }
}
