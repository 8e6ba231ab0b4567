import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
import VigilConnection
import VigilFraming
import VigilSupervisor

/// Books everything a connection reports, and echoes messages when asked to.
final class Recorder: MessageSink, ConnectionObserver {
    var echo = false
    var outcomes: [(CloseOutcome, MonotonicInstant)] = []
    var messages: [WebSocketMessage] = []
    var violations: [FramingError] = []

    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        messages.append(message)
        if echo { connection.send(message) }
    }

    func violationDetected(_ error: FramingError) { violations.append(error) }
    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) { outcomes.append((outcome, now)) }
}

/// One supervised connection on an `EmbeddedChannel`, its clock the embedded loop's: time moves
/// only when a test advances it, and the timer wheel ticks with it. Torn down when the test ends:
/// the wheel's pending tick holds the loop, so the loop is shut down to let both go.
final class Shell {
    let loop = EmbeddedEventLoop()
    let channel: EmbeddedChannel
    let recorder = Recorder()
    let handler: SupervisedConnectionHandler
    let opened: MonotonicInstant

    /// - Parameter compression: what the handshake settled, made on the shell's loop.
    init(
        role: WebSocketRole, policy: SupervisionPolicy = SupervisionPolicy(pingInterval: .zero),
        limits: FramingLimits = FramingLimits(), compression: (any EventLoop) -> MessageCompression = { _ in .off }
    ) throws {
        let loop = self.loop
        let clock = ConnectionClock { MonotonicInstant(loop.now) }
        channel = EmbeddedChannel(loop: loop)
        opened = clock.now()
        handler = SupervisedConnectionHandler(
            configuration: .init(role: role, policy: policy, limits: limits), sink: recorder,
            observer: recorder,
            wheel: TimerWheel(eventLoop: loop, clock: clock), clock: clock, openedAt: opened,
            compression: compression(loop))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// A frame from the remote end as NIO's decoder delivers it: masked when it is a client.
    func receive(_ opcode: WebSocketOpcode, _ bytes: [UInt8] = [], masked: Bool, rsv1: Bool = false) throws {
        var data = ByteBuffer(bytes: bytes)
        let key: WebSocketMaskingKey? = masked ? .random() : nil
        if let key { data.webSocketMask(key) }
        try channel.writeInbound(WebSocketFrame(fin: true, rsv1: rsv1, opcode: opcode, maskKey: key, data: data))
    }

    func receiveClose(_ code: UInt16, masked: Bool) throws {
        try receive(.connectionClose, [UInt8(code >> 8), UInt8(code & 0xFF)], masked: masked)
    }

    /// Every frame written since the last call: the shell writes bytes, read back here by NIO's
    /// decoder, payloads unmasked (the mask key kept, as it went on the wire).
    func written() throws -> [WebSocketFrame] {
        var bytes = ByteBuffer()
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&buffer) }
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 30)))
        defer { _ = try? decoder.finish() }
        try decoder.writeInbound(bytes)
        var frames: [WebSocketFrame] = []
        while var frame = try decoder.readInbound(as: WebSocketFrame.self) {
            frame.data = frame.unmaskedData
            frames.append(frame)
        }
        // Every byte is in a frame, and every header is the shortest (nothing left over).
        let framed = frames.reduce(0) { total, frame in
            let extended = frame.length < 126 ? 0 : frame.length <= 0xFFFF ? 2 : 8
            return total + 2 + extended + (frame.maskKey == nil ? 0 : 4) + frame.length
        }
        struct UnframedBytes: Error { let written: Int, framed: Int }
        guard framed == bytes.readableBytes else { throw UnframedBytes(written: bytes.readableBytes, framed: framed) }
        return frames
    }

    func advance(_ duration: Duration) {
        loop.advanceTime(by: .nanoseconds(duration.inNanoseconds))
    }

    deinit {
        _ = try? channel.finish()
        try? loop.syncShutdownGracefully()
    }
}

extension WebSocketFrame {
    /// The status of an outgoing close frame.
    var closeCode: UInt16? { data.getInteger(at: data.readerIndex, as: UInt16.self) }
}

@Suite("The supervised shell, client role, on a manual clock")
struct ClientRoleShellTests {
    @Test("everything a client sends is masked: messages, pongs, close replies (RFC 6455 §5.3)")
    func masking() throws {
        let shell = try Shell(role: .client)
        shell.recorder.echo = true
        try shell.receive(.text, Array("hello".utf8), masked: false)
        try shell.receive(.ping, [1, 2, 3], masked: false)
        try shell.receiveClose(1000, masked: false)
        let frames = try shell.written()
        #expect(frames.map(\.opcode) == [.text, .pong, .connectionClose])
        #expect(frames.allSatisfy { $0.maskKey != nil }, "every frame carries a mask key")
        #expect(String(buffer: frames[0].data) == "hello")
        #expect(Array(frames[1].data.readableBytesView) == [1, 2, 3])
        #expect(frames[2].closeCode == 1000)
    }

    @Test("a server's masked frame fails the connection: masked 1002, closed at once, recorded at once")
    func maskedServerFrame() throws {
        let shell = try Shell(role: .client)
        try shell.receive(.binary, [1], masked: true)
        let frames = try shell.written()
        #expect(frames.count == 1 && frames[0].opcode == .connectionClose && frames[0].maskKey != nil)
        #expect(frames[0].closeCode == 1002)
        #expect(!shell.channel.isActive, "TCP closed without waiting for the server's answer")
        #expect(
            shell.recorder.outcomes.map(\.0) == [
                CloseOutcome(
                    kind: .error, code: 1002, cause: .protocolError, initiator: .local, clean: false,
                    reason: "masked server frame")
            ])
        #expect(shell.recorder.outcomes[0].1 == shell.opened, "recorded at the moment of the violation")
    }

    @Test("after the server's close the client answers, records, and waits for the server to close TCP")
    func waitsForServerFIN() throws {
        let shell = try Shell(role: .client)
        shell.advance(.milliseconds(200))
        try shell.receiveClose(1001, masked: false)
        #expect(try shell.written().map(\.closeCode) == [1001])
        #expect(shell.recorder.outcomes.map(\.0.kind) == [.goingAway])
        #expect(shell.recorder.outcomes[0].1 == shell.opened + .milliseconds(200))
        shell.advance(.seconds(4))
        #expect(shell.channel.isActive, "still waiting within the close timeout")
        shell.channel.pipeline.fireUserInboundEventTriggered(WebSocketInputEnded(midFrame: false))
        #expect(!shell.channel.isActive, "the server's FIN ends the wait")
        #expect(shell.recorder.outcomes.count == 1)
    }

    @Test("a server that never closes TCP: the client closes it itself at the close timeout")
    func closesAtTimeout() throws {
        let shell = try Shell(role: .client, policy: SupervisionPolicy(pingInterval: .zero, closeTimeout: .seconds(2)))
        try shell.receiveClose(1000, masked: false)
        shell.advance(.milliseconds(1990))
        #expect(shell.channel.isActive)
        shell.advance(.milliseconds(30))  // the wheel ticks every 10 ms
        #expect(!shell.channel.isActive)
        #expect(shell.recorder.outcomes.count == 1)
    }

    @Test("a close the client starts: masked close frame, the server's answer completes it, then the FIN is awaited")
    func clientStartsClose() throws {
        let shell = try Shell(role: .client)
        shell.handler.close(LocalClose(code: 1000, reason: "done", cause: .shutdown))
        let frames = try shell.written()
        #expect(frames.map(\.closeCode) == [1000] && frames[0].maskKey != nil)
        try shell.receiveClose(1000, masked: false)
        #expect(try shell.written().isEmpty, "no second close frame")
        #expect(
            shell.recorder.outcomes.map(\.0) == [
                CloseOutcome(
                    kind: .normal, code: 1000, cause: .shutdown, initiator: .local, clean: true, reason: "done")
            ])
        #expect(shell.channel.isActive)
        shell.channel.pipeline.fireChannelInactive()
        #expect(shell.recorder.outcomes.count == 1)
    }

    @Test("pings of the client's own: masked, and the server's pong gives the round trip")
    func clientHeartbeat() throws {
        let shell = try Shell(
            role: .client, policy: SupervisionPolicy(pingInterval: .seconds(1), pongTimeout: .seconds(1)))
        shell.advance(.milliseconds(1010))
        let ping = try #require(try shell.written().first)
        #expect(ping.opcode == .ping && ping.maskKey != nil)
        shell.advance(.milliseconds(990))
        #expect(!shell.channel.isActive, "no pong: closed by the pong timeout")
        #expect(shell.recorder.outcomes.map(\.0.cause) == [.pongTimeout])
    }
}

@Suite("The supervised shell, server role, on a manual clock")
struct ServerRoleShellTests {
    @Test("a server never masks, and closes TCP right after answering a close")
    func serverClosesFirst() throws {
        let shell = try Shell(role: .server)
        shell.recorder.echo = true
        try shell.receive(.binary, [9], masked: true)
        try shell.receiveClose(1000, masked: true)
        let frames = try shell.written()
        #expect(frames.map(\.opcode) == [.binary, .connectionClose])
        #expect(frames.allSatisfy { $0.maskKey == nil })
        #expect(!shell.channel.isActive)
    }

    @Test(
        "unmasked client frame, reserved bit, unknown opcode, bad UTF-8: failed at once, no wait for an answer",
        arguments: [
            WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "x")),
            WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: [0, 0, 0, 0], data: ByteBuffer(string: "x")),
            WebSocketFrame(
                fin: true, opcode: WebSocketOpcode(encodedWebSocketOpcode: 0x3)!, maskKey: [0, 0, 0, 0],
                data: ByteBuffer()),
            WebSocketFrame(fin: true, opcode: .text, maskKey: [0, 0, 0, 0], data: ByteBuffer(bytes: [0xC0, 0xAF])),
        ])
    func failFast(frame: WebSocketFrame) throws {
        let shell = try Shell(role: .server)
        try shell.channel.writeInbound(frame)
        #expect(try shell.written().map(\.opcode) == [.connectionClose])
        #expect(!shell.channel.isActive)
        #expect(shell.recorder.outcomes.count == 1)
        #expect(shell.recorder.outcomes.first?.0.clean == false)
        #expect(shell.recorder.outcomes.first?.1 == shell.opened)
    }

    @Test("shutdown waits for the answer up to the close timeout, then records it unanswered")
    func shutdownWaits() throws {
        let shell = try Shell(role: .server)
        shell.channel.pipeline.fireUserInboundEventTriggered(CloseRequest(.shutdown))
        #expect(try shell.written().map(\.closeCode) == [1001])
        shell.advance(.milliseconds(4990))
        #expect(shell.channel.isActive && shell.recorder.outcomes.isEmpty)
        shell.advance(.milliseconds(30))
        #expect(!shell.channel.isActive)
        #expect(shell.recorder.outcomes.map(\.0) == [LocalClose.shutdown.outcomeForTests(clean: false)])
    }
}

extension LocalClose {
    func outcomeForTests(clean: Bool) -> CloseOutcome {
        CloseOutcome(
            kind: .forStatus(code ?? 1005), code: code ?? 1005, cause: cause, initiator: .local, clean: clean,
            reason: reason)
    }
}

/// Counts the reads that get past the supervised handler toward the socket.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

@Suite("The supervised shell's reading while it closes")
struct ClosingReadsTests {
    @Test("a close this end starts resumes a paused connection and keeps it read: the answer may sit behind data")
    func closeResumesReading() throws {
        let shell = try Shell(role: .server)
        let counter = ReadCounter()
        try shell.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        shell.handler.pauseReading()  // as a relay does while the partner leg is not draining
        let before = counter.reads
        shell.channel.read()
        #expect(counter.reads == before, "paused: the read waits")
        shell.handler.close(LocalClose(code: 1001, reason: "partner gone", cause: .partnerClosed))
        #expect(counter.reads == before + 1, "the pending read goes out with the close")
        shell.handler.pauseReading()
        shell.channel.read()
        #expect(counter.reads == before + 2, "a closing connection cannot be paused again")
        try shell.receive(.binary, [1, 2, 3], masked: true)
        #expect(shell.recorder.messages.isEmpty, "data after the close frame is read and dropped")
        try shell.receiveClose(1001, masked: true)
        #expect(shell.recorder.outcomes.map(\.0.clean) == [true])
    }
}
