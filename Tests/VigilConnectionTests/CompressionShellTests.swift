import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
import VigilConnection
import VigilFraming
import VigilSupervisor

/// permessage-deflate in the supervised shell: an endpoint inflates what it receives and
/// deflates what it sends; a relay's leg passes compressed messages on as they are, and its
/// client leg takes a compressed app pong out of the stream only while one is awaited.
@Suite("The supervised shell with permessage-deflate, on a manual clock")
struct CompressionShellTests {
    static let noTakeover = PerMessageDeflate.Agreement(serverNoContextTakeover: true, clientNoContextTakeover: true)
    static let heartbeat = AppHeartbeat(
        interval: .seconds(1), timeout: .seconds(5), ping: #"{"type":"ping"}"#, pong: #"{"type":"pong"}"#)

    /// `bytes` as a client sends them compressed, however short (as browsers do): deflated by a
    /// fresh compressor that keeps its context, so it never skips a message it cannot shrink.
    static func clientDeflated(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let client = MessageDeflate(
            agreement: PerMessageDeflate.Agreement(), role: .client, options: DeflateOptions(minimumSize: 0),
            streams: DeflateStreams(), eventLoop: loop)
        let compressed = client.deflate(ByteBuffer(bytes: Array(bytes)), allocator: ByteBufferAllocator())!
        return Array(compressed.readableBytesView)
    }

    static func clientDeflated(_ text: String) -> [UInt8] { clientDeflated(text.utf8) }

    static func endpoint(_ agreement: PerMessageDeflate.Agreement = noTakeover) -> (any EventLoop) -> MessageCompression
    {
        { loop in
            .endpoint(
                MessageDeflate(
                    agreement: agreement, role: .server, options: DeflateOptions(), streams: DeflateStreams(),
                    eventLoop: loop))
        }
    }

    static func relayedClientLeg(_ loop: any EventLoop) -> MessageCompression {
        .relayed(
            pongReader: MessageDeflate(
                agreement: noTakeover, role: .server, options: DeflateOptions(), streams: DeflateStreams(),
                eventLoop: loop))
    }

    @Test("an endpoint inflates a compressed message for its sink and deflates a long reply, RSV1 set")
    func endpointRoundTrip() throws {
        let shell = try Shell(role: .server, compression: Self.endpoint())
        shell.recorder.echo = true
        let text = String(repeating: "a compressible line of text ", count: 20)
        try shell.receive(.text, Self.clientDeflated(text), masked: true, rsv1: true)
        #expect(shell.recorder.messages.map { String(buffer: $0.data) } == [text])
        let frames = try shell.written()
        #expect(frames.count == 1 && frames[0].rsv1 && frames[0].opcode == .text)
        #expect(frames[0].data.readableBytes < text.utf8.count / 4, "sent compressed")
    }

    @Test("an endpoint sends a message under compression_min_size as it is, RSV1 clear")
    func shortMessageUncompressed() throws {
        let shell = try Shell(role: .server, compression: Self.endpoint())
        shell.recorder.echo = true
        try shell.receive(.text, Self.clientDeflated("short"), masked: true, rsv1: true)
        let frames = try shell.written()
        #expect(frames.count == 1 && !frames[0].rsv1 && String(buffer: frames[0].data) == "short")
    }

    @Test("a compressed message that inflates past max_message ends with 1009, recorded message_too_big")
    func inflatedLimit() throws {
        let limits = FramingLimits(maxFrameSize: 4096, maxMessageSize: 10_000)
        let shell = try Shell(role: .server, limits: limits, compression: Self.endpoint())
        let zeros = String(repeating: "0", count: 100_000)  // deflates to a few hundred bytes
        let compressed = Self.clientDeflated(zeros)
        #expect(compressed.count < 1000)
        try shell.receive(.text, compressed, masked: true, rsv1: true)
        #expect(try shell.written().map(\.closeCode) == [1009])
        #expect(shell.recorder.messages.isEmpty)
        #expect(shell.recorder.outcomes.map(\.0.cause) == [.messageTooBig])
    }

    @Test("compressed text that inflates to invalid UTF-8 ends with 1007")
    func inflatedUTF8() throws {
        let shell = try Shell(role: .server, compression: Self.endpoint())
        try shell.receive(.text, Self.clientDeflated([0xC3, 0x28, 0x41]), masked: true, rsv1: true)
        #expect(try shell.written().map(\.closeCode) == [1007])
    }

    @Test("RSV1 on a connection without the extension is 1002")
    func rsv1WithoutExtension() throws {
        let shell = try Shell(role: .server)
        try shell.receive(.text, Self.clientDeflated("hello hello hello"), masked: true, rsv1: true)
        #expect(try shell.written().map(\.closeCode) == [1002])
    }

    @Test("a relay's leg passes a compressed message on as it came: compressed, not inflated")
    func relayedAsIs() throws {
        let shell = try Shell(role: .server, compression: { _ in .relayed(pongReader: nil) })
        let compressed = Self.clientDeflated("a message for the backend, which inflates it itself")
        try shell.receive(.text, compressed, masked: true, rsv1: true)
        #expect(shell.recorder.messages.count == 1)
        #expect(shell.recorder.messages[0].compressed)
        #expect(Array(shell.recorder.messages[0].data.readableBytesView) == compressed)
    }

    @Test("a client leg with the app heartbeat takes a compressed pong out only while an app ping is out")
    func compressedAppPong() throws {
        var policy = SupervisionPolicy(pingInterval: .zero)
        policy.appHeartbeat = Self.heartbeat
        let shell = try Shell(role: .server, policy: policy, compression: Self.relayedClientLeg)
        let pong = Self.clientDeflated(Self.heartbeat.pong)
        // No ping out yet: a message that happens to be the pong is the application's.
        try shell.receive(.text, pong, masked: true, rsv1: true)
        #expect(shell.recorder.messages.count == 1)
        shell.advance(.seconds(1))
        let ping = try shell.written()
        #expect(ping.count == 1 && !ping[0].rsv1 && String(buffer: ping[0].data) == Self.heartbeat.ping)
        // Another small compressed message is relayed; the pong is taken out of the stream.
        try shell.receive(.text, Self.clientDeflated("not the pong"), masked: true, rsv1: true)
        try shell.receive(.text, pong, masked: true, rsv1: true)
        #expect(shell.recorder.messages.count == 2, "the pong went to the heartbeat, not the relay")
        #expect(shell.recorder.messages.allSatisfy { $0.compressed })
        // Answered: the timeout passes without a close.
        shell.advance(.milliseconds(900))
        _ = try shell.written()
        shell.advance(.seconds(5))
        #expect(shell.recorder.outcomes.isEmpty, "the compressed pong answered the app ping")
    }

    @Test("a relayed client leg whose client keeps its compression context is not app-pinged, even after a reload")
    func noHeartbeatWithoutPongReader() throws {
        var policy = SupervisionPolicy(pingInterval: .zero)
        let shell = try Shell(role: .server, policy: policy, compression: { _ in .relayed(pongReader: nil) })
        policy.appHeartbeat = Self.heartbeat
        shell.channel.pipeline.fireUserInboundEventTriggered(PolicyUpdate(policy))
        shell.advance(.seconds(20))
        #expect(try shell.written().isEmpty, "no app ping: its compressed pong could not be taken out")
        #expect(shell.recorder.outcomes.isEmpty)
    }
}
