import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import VigilFraming

/// Decodes raw bytes with NIO's decoder (through our stream decoder) and feeds the assembler.
/// Finishes its channel when released (an unfinished EmbeddedChannel keeps its pipeline alive).
final class AssemblerHarness {
    let channel = EmbeddedChannel()
    var assembler: WebSocketMessageAssembler

    deinit {
        _ = try? channel.finish()
    }

    init(role: WebSocketRole = .server, limits: FramingLimits = FramingLimits(maxFrameSize: 1024, maxMessageSize: 4096))
        throws
    {
        assembler = WebSocketMessageAssembler(role: role, limits: limits)
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: limits.maxFrameSize)))
    }

    /// Feeds raw bytes; returns what the assembler made of each decoded frame.
    func feed(_ bytes: [UInt8]) throws -> [Result<WebSocketInbound, FramingError>] {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        var results: [Result<WebSocketInbound, FramingError>] = []
        while let frame = try channel.readInbound(as: WebSocketFrame.self) {
            do throws(FramingError) {
                results.append(.success(try assembler.receive(frame)))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    func one(_ bytes: [UInt8]) throws -> Result<WebSocketInbound, FramingError> {
        let results = try feed(bytes)
        try #require(results.count == 1)
        return results[0]
    }
}

func error(_ result: Result<WebSocketInbound, FramingError>) -> FramingError? {
    if case .failure(let error) = result { return error }
    return nil
}

func message(_ result: Result<WebSocketInbound, FramingError>) -> (WebSocketMessage.Kind, [UInt8])? {
    if case .success(.message(let message)) = result {
        return (message.kind, Array(message.data.readableBytesView))
    }
    return nil
}

@Suite("Message assembly and validation")
struct MessageAssemblerTests {
    @Test("single-frame text and binary messages are unmasked and delivered whole")
    func singleFrames() throws {
        let h = try AssemblerHarness()
        let text = try #require(message(try h.one(frameBytes(opcode: 1, payload: Array("héllo".utf8)))))
        #expect(text.0 == .text)
        #expect(text.1 == Array("héllo".utf8))
        let binary = try #require(message(try h.one(frameBytes(opcode: 2, payload: [0, 0xFF, 7]))))
        #expect(binary.0 == .binary)
        #expect(binary.1 == [0, 0xFF, 7])
    }

    @Test(
        "a payload kept by its consumer is not overwritten by the frames after it (the unmasking buffer is reused only when let go)"
    )
    func keptPayloadsStayIntact() throws {
        let h = try AssemblerHarness()
        var kept: [ByteBuffer] = []
        for index in 0..<5 {
            guard
                case .success(.message(let message)) = try h.one(
                    frameBytes(opcode: 2, payload: [UInt8](repeating: UInt8(index), count: 100)))
            else {
                Issue.record("message \(index) not delivered")
                return
            }
            kept.append(message.data)
            guard case .success(.pong(let pong)) = try h.one(frameBytes(opcode: 10, payload: [9, 9, 9, UInt8(index)]))
            else {
                Issue.record("pong \(index) not delivered")
                return
            }
            #expect(Array(pong.readableBytesView) == [9, 9, 9, UInt8(index)])
        }
        for (index, data) in kept.enumerated() {
            #expect(Array(data.readableBytesView) == [UInt8](repeating: UInt8(index), count: 100), "message \(index)")
        }
        // Payloads let go of at once (the buffer is then rewritten in place) still read right.
        let first = try #require(message(try h.one(frameBytes(opcode: 2, payload: [1, 2, 3]))))
        let second = try #require(message(try h.one(frameBytes(opcode: 2, payload: [4, 5]))))
        #expect(first.1 == [1, 2, 3] && second.1 == [4, 5])
    }

    @Test("fragments are assembled, with control frames interleaved")
    func fragments() throws {
        let h = try AssemblerHarness()
        let euro = Array("€".utf8)  // split the scalar across fragments
        let results = try h.feed(
            frameBytes(opcode: 1, payload: [0x41, euro[0]], fin: false)
                + frameBytes(opcode: 9, payload: [7])
                + frameBytes(opcode: 0, payload: [euro[1]], fin: false)
                + frameBytes(opcode: 0, payload: [euro[2], 0x42], fin: true))
        #expect(results.count == 4)
        guard case .success(.fragment) = results[0], case .success(.ping(let ping)) = results[1] else {
            Issue.record("unexpected \(results)")
            return
        }
        #expect(Array(ping.readableBytesView) == [7])
        let assembled = try #require(message(results[3]))
        #expect(assembled.1 == [0x41] + euro + [0x42])
        #expect(!h.assembler.isAssembling)
    }

    @Test(
        "protocol errors name what was wrong",
        arguments: [
            (frameBytes(opcode: 1, payload: [0x41], rsv: 4), "reserved bits set without a negotiated extension"),
            (frameBytes(opcode: 3, payload: []), "unknown opcode 0x3"),
            (frameBytes(opcode: 0xB, payload: []), "unknown opcode 0xB"),
            (frameBytes(opcode: 1, payload: [0x41], mask: nil), "unmasked client frame"),
            (frameBytes(opcode: 0, payload: [0x41]), "continuation frame without a message to continue"),
            (frameBytes(opcode: 8, payload: [3]), "close frame with a 1-byte payload"),
            (frameBytes(opcode: 8, payload: [0x03, 0xED]), "invalid close code 1005"),
            (frameBytes(opcode: 8, payload: [0x03, 0xE7]), "invalid close code 999"),
            (frameBytes(opcode: 8, payload: [0x13, 0x88]), "invalid close code 5000"),
        ] as [([UInt8], String)])
    func protocolErrors(bytes: [UInt8], detail: String) throws {
        let h = try AssemblerHarness()
        let failure = try #require(error(try h.one(bytes)))
        #expect(failure.cause == .protocolError && failure.detail == detail)
        #expect(failure.inCloseFrame == detail.contains("close"))
        #expect(failure.closeCode == 1002)
    }

    @Test("a new data frame inside a fragmented message is a protocol error")
    func interleavedData() throws {
        let h = try AssemblerHarness()
        let results = try h.feed(
            frameBytes(opcode: 2, payload: [1], fin: false) + frameBytes(opcode: 1, payload: [0x41]))
        #expect(error(results[1])?.detail == "new data frame before the fragmented message finished")
    }

    @Test("a server frame must not be masked on the client side")
    func clientRole() throws {
        let h = try AssemblerHarness(role: .client)
        #expect(error(try h.one(frameBytes(opcode: 1, payload: [0x41])))?.detail == "masked server frame")
        let ok = try AssemblerHarness(role: .client)
        #expect(message(try ok.one(frameBytes(opcode: 1, payload: [0x41], mask: nil))) != nil)
    }

    @Test("invalid UTF-8 fails at the first bad fragment, and in close reasons")
    func invalidUTF8() throws {
        let h = try AssemblerHarness()
        let results = try h.feed(frameBytes(opcode: 1, payload: [0x41, 0xC0], fin: false))
        #expect(error(results[0]) == FramingError(.invalidUTF8, "text message is not valid UTF-8"))
        let unfinished = try AssemblerHarness()
        #expect(error(try unfinished.one(frameBytes(opcode: 1, payload: [0xE2, 0x82])))?.cause == .invalidUTF8)
        let close = try AssemblerHarness()
        let closeError = try #require(error(try close.one(frameBytes(opcode: 8, payload: [0x03, 0xE8, 0xFF]))))
        #expect(closeError == FramingError(.invalidUTF8, "close reason is not valid UTF-8", inCloseFrame: true))
        #expect(closeError.closeCode == 1007)
    }

    @Test("binary messages are not UTF-8 checked")
    func binaryNotChecked() throws {
        let h = try AssemblerHarness()
        #expect(message(try h.one(frameBytes(opcode: 2, payload: [0xC0, 0xFF]))) != nil)
    }

    @Test("close frames parse their status and reason")
    func closeFrames() throws {
        let h = try AssemblerHarness()
        guard
            case .success(.close(let payload)) = try h.one(
                frameBytes(opcode: 8, payload: [0x0F, 0xA0] + Array("ciao".utf8)))
        else {
            Issue.record("not a close")
            return
        }
        #expect(payload == ClosePayload(code: 4000, reason: "ciao"))
        guard case .success(.close(let empty)) = try h.one(frameBytes(opcode: 8, payload: [])) else {
            Issue.record("not a close")
            return
        }
        #expect(empty.code == nil)
    }

    @Test("messages over the limit are rejected from the fragment that crosses it")
    func messageTooBig() throws {
        let h = try AssemblerHarness(limits: FramingLimits(maxFrameSize: 1024, maxMessageSize: 1500))
        let results = try h.feed(
            frameBytes(opcode: 2, payload: Array(repeating: 1, count: 1000), fin: false)
                + frameBytes(opcode: 0, payload: Array(repeating: 1, count: 501)))
        #expect(error(results[1]) == FramingError(.messageTooBig, "message exceeds 1500 bytes"))
        #expect(error(results[1])?.closeCode == 1009)
    }

    @Test("a frame over the frame limit fails in NIO's decoder, from its header alone")
    func frameTooBig() throws {
        let h = try AssemblerHarness(limits: FramingLimits(maxFrameSize: 100, maxMessageSize: 4096))
        let header = Array(frameBytes(opcode: 2, payload: Array(repeating: 0, count: 101)).prefix(8))
        #expect(throws: NIOWebSocketError.invalidFrameLength) { try h.channel.writeInbound(ByteBuffer(bytes: header)) }
        let mapped = WebSocketPipeline.framingError(from: NIOWebSocketError.invalidFrameLength)
        #expect(mapped?.closeCode == 1009)
        #expect(mapped == FramingError(.messageTooBig, "frame exceeds the size limit"))
    }

    @Test("oversized or fragmented control frames fail in NIO's decoder and map to 1002")
    func badControlFrames() throws {
        let h = try AssemblerHarness()
        #expect(throws: NIOWebSocketError.multiByteControlFrameLength) {
            try h.channel.writeInbound(
                ByteBuffer(bytes: frameBytes(opcode: 9, payload: Array(repeating: 0, count: 126))))
        }
        let f = try AssemblerHarness()
        #expect(throws: NIOWebSocketError.fragmentedControlFrame) {
            try f.channel.writeInbound(ByteBuffer(bytes: frameBytes(opcode: 9, payload: [1], fin: false)))
        }
        #expect(WebSocketPipeline.framingError(from: NIOWebSocketError.fragmentedControlFrame)?.closeCode == 1002)
    }
}

@Suite("End of input: between frames or mid-frame")
struct StreamEndTests {
    /// Records the input-ended event the stream decoder fires.
    final class EndRecorder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = WebSocketFrame
        var ended: [WebSocketInputEnded] = []
        var frames = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { frames += 1 }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? WebSocketInputEnded { ended.append(event) }
        }
    }

    func run(_ chunks: [[UInt8]]) throws -> EndRecorder {
        let channel = EmbeddedChannel()
        let recorder = EndRecorder()
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: 1024)))
        try channel.pipeline.syncOperations.addHandler(recorder)
        for chunk in chunks { try channel.writeInbound(ByteBuffer(bytes: chunk)) }
        channel.pipeline.fireChannelInactive()
        _ = try? channel.finish()
        return recorder
    }

    let whole = frameBytes(opcode: 1, payload: Array("hello".utf8))

    @Test("EOF right after complete frames is a plain end")
    func betweenFrames() throws {
        let r = try run([whole, whole])
        #expect(r.frames == 2)
        #expect(r.ended == [WebSocketInputEnded(midFrame: false)])
    }

    @Test("EOF with no frame at all is a plain end")
    func noFrames() throws {
        #expect(try run([]).ended == [WebSocketInputEnded(midFrame: false)])
    }

    @Test("EOF after part of a frame is mid-frame, wherever the cut falls", arguments: 1..<11)
    func midFrame(cut: Int) throws {
        let r = try run([whole, Array(whole.prefix(cut))])
        #expect(r.frames == 1)
        #expect(r.ended == [WebSocketInputEnded(midFrame: true)])
    }

    @Test("a frame split over many reads still ends cleanly when it completes")
    func byteByByte() throws {
        let r = try run(whole.map { [$0] })
        #expect(r.frames == 1)
        #expect(r.ended == [WebSocketInputEnded(midFrame: false)])
    }
}

@Suite("Close payload encoding")
struct ClosePayloadTests {
    @Test("long reasons are cut at a scalar boundary to fit a control frame")
    func truncation() {
        let reason = String(repeating: "é", count: 100)  // 200 bytes
        let encoded = ClosePayload(code: 1001, reason: reason).encode(allocator: ByteBufferAllocator())
        #expect(encoded.readableBytes <= 125)
        var copy = encoded
        #expect(copy.readInteger(as: UInt16.self) == 1001)
        #expect(copy.readString(length: copy.readableBytes) == String(repeating: "é", count: 61))
    }

    @Test("no code encodes as an empty payload")
    func empty() {
        #expect(ClosePayload(code: nil).encode(allocator: ByteBufferAllocator()).readableBytes == 0)
    }

    @Test("valid close codes per RFC 6455 §7.4")
    func validity() {
        let valid = (0...5999).filter { CloseCode.isValidOnWire(UInt16($0)) }
        #expect(valid == Array(1000...1003) + Array(1007...1014) + Array(3000...4999))
    }
}
