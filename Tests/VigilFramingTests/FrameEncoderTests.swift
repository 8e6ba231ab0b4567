import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import VigilFraming

@Suite("Frame encoder: NIO's wire format, byte for byte")
struct FrameEncoderTests {
    /// Every byte NIO's encoder puts on the wire for `frames`.
    static func nios(_ frames: [WebSocketFrame]) throws -> [UInt8] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        for frame in frames { try channel.writeOutbound(frame) }
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        _ = try channel.finish()
        return bytes
    }

    /// Every byte ours gives for `frames`, and in how many buffers.
    static func ours(_ frames: [WebSocketFrame]) -> (bytes: [UInt8], buffers: Int) {
        var encoder = FrameEncoder()
        var bytes: [UInt8] = []
        var buffers = 0
        for frame in frames {
            let (first, payload) = encoder.encode(frame, allocator: ByteBufferAllocator())
            bytes += first.readableBytesView
            buffers += 1
            if let payload {
                bytes += payload.readableBytesView
                buffers += 1
            }
        }
        return (bytes, buffers)
    }

    static func frames() -> [WebSocketFrame] {
        var random = SystemRandomNumberGenerator()
        var frames: [WebSocketFrame] = []
        let opcodes: [WebSocketOpcode] = [.text, .binary, .continuation, .ping, .pong, .connectionClose]
        for length in [0, 1, 7, 122, 123, 125, 126, 127, 4096, 4097, 65535, 65536, 70001] {
            for masked in [false, true] {
                let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                let key =
                    masked ? WebSocketMaskingKey((0..<4).map { _ in UInt8.random(in: 0...255, using: &random) }) : nil
                let opcode = length <= 125 ? opcodes.randomElement(using: &random)! : .binary
                frames.append(
                    WebSocketFrame(
                        fin: Bool.random(using: &random), rsv1: Bool.random(using: &random),
                        rsv2: Bool.random(using: &random), rsv3: Bool.random(using: &random), opcode: opcode,
                        maskKey: key, data: ByteBuffer(bytes: payload)))
            }
        }
        // (122 and 123 bytes masked: a frame of exactly the spare buffer's 128 bytes, and one past.)
        // A payload that is a slice of a larger buffer, as a relayed one is (NIO's decoder slices
        // the read buffer): bytes around it must not leak into the frame, nor be masked.
        let read = ByteBuffer(bytes: Array(0..<200))
        frames.append(
            WebSocketFrame(fin: true, opcode: .text, maskKey: [9, 8, 7, 6], data: read.getSlice(at: 50, length: 64)!))
        frames.append(WebSocketFrame(fin: true, opcode: .text, data: read.getSlice(at: 50, length: 64)!))
        // Extension data (vigild sets none, a test may): masked as one payload with the data.
        frames.append(
            WebSocketFrame(
                fin: true, opcode: .binary, maskKey: [1, 2, 3, 4], data: ByteBuffer(bytes: [5, 6, 7]),
                extensionData: ByteBuffer(bytes: [1, 2, 3, 4, 5])))
        return frames
    }

    /// The same frames with payloads of their own: NIO's encoder masks in place.
    static func copies(_ frames: [WebSocketFrame]) -> [WebSocketFrame] {
        frames.map { frame in
            var copy = frame
            copy.data = ByteBuffer(bytes: Array(frame.data.readableBytesView))
            copy.extensionData = frame.extensionData.map { ByteBuffer(bytes: Array($0.readableBytesView)) }
            return copy
        }
    }

    @Test("every opcode, bit, length boundary and mask writes what NIO's encoder writes")
    func sameBytesAsNIO() throws {
        let frames = Self.frames()
        let ours = Self.ours(frames).bytes
        let nios = try Self.nios(Self.copies(frames))
        #expect(ours.count == nios.count)
        #expect(ours == nios)
    }

    @Test("a small frame is one buffer; a large unmasked payload goes uncopied behind its header")
    func buffersPerFrame() {
        let slice = ByteBuffer(bytes: Array(repeating: 1, count: 300)).getSlice(at: 10, length: 64)!
        let large = ByteBuffer(repeating: 7, count: FrameEncoder.coalescingLimit + 1)
        let key: WebSocketMaskingKey = [1, 2, 3, 4]
        let buffers = [
            Self.ours([WebSocketFrame(fin: true, opcode: .text, data: slice)]).buffers,
            Self.ours([WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: slice)]).buffers,
            Self.ours([WebSocketFrame(fin: true, opcode: .binary, data: large)]).buffers,
            Self.ours([WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: large)]).buffers,
        ]
        #expect(buffers == [1, 1, 2, 1])
    }

    @Test("the caller's payload is never masked in place (a relay's is the read buffer)")
    func callerBufferUntouched() {
        let payload = ByteBuffer(bytes: Array(0..<100))
        _ = Self.ours([WebSocketFrame(fin: true, opcode: .binary, maskKey: [0xFF, 0xFF, 0xFF, 0xFF], data: payload)])
        #expect(Array(payload.readableBytesView) == Array(0..<100))
    }

    @Test("a small frame reuses the spare buffer once the socket has let go of it, and never before")
    func spareBuffer() {
        var encoder = FrameEncoder()
        func ping(_ byte: UInt8) -> ByteBuffer {
            encoder.encode(
                WebSocketFrame(fin: true, opcode: .ping, maskKey: [1, 2, 3, 4], data: ByteBuffer(bytes: [byte])),
                allocator: ByteBufferAllocator()
            ).first
        }
        func address(_ buffer: ByteBuffer) -> UInt {
            buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        }
        let held = ping(1)  // the spare, still pending: the next frame must not touch it
        let heldBytes = Array(held.readableBytesView)
        let heldAddress = address(held)
        let second = ping(2)
        #expect(Array(held.readableBytesView) == heldBytes)
        #expect(address(second) != heldAddress)
        #expect(Array(second.readableBytesView) == [0x89, 0x81, 1, 2, 3, 4, 2 ^ 1])
        _ = consume held  // written: the encoder's spare is its only owner again
        let third = ping(3)
        #expect(address(third) == heldAddress)
        #expect(Array(third.readableBytesView) == [0x89, 0x81, 1, 2, 3, 4, 3 ^ 1])
    }
}
