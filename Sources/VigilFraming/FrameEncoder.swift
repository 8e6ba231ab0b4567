import NIOCore
import NIOWebSocket

/// Turns outbound frames into the bytes NIO's `WebSocketFrameEncoder` would write, byte for byte
/// (`FrameEncoderTests` holds the two together), in fewer steps where a relay spends its time:
///
/// - A frame with a payload of at most `coalescingLimit` bytes, or a masked one of any size,
///   becomes one buffer, header and payload together: one pending write, one iovec. NIO's
///   encoder can put the header in front of the payload only in a buffer it owns outright with
///   room before the bytes; a relayed payload is a slice of the read buffer, so it wrote a
///   second buffer for every frame.
/// - Masking (the client role, RFC 6455 §5.3) eight bytes at a time (`WebSocketMasking`), in that
///   copy: NIO's goes a byte at a time, in the caller's buffer, copying it first when shared.
/// - A larger unmasked payload goes as it is, behind a header of its own (no copy).
///
/// Not a channel handler: the supervised connection's `OutboundWriter` encodes its frames itself
/// and writes bytes, so a frame is neither boxed into the pipeline nor passed through a handler
/// of its own (both cost more than the encoding). Parsing stays NIO's (`WebSocketFrameStreamDecoder`).
public struct FrameEncoder {
    /// The largest payload copied behind its header rather than written as a second buffer: a
    /// copy this size costs less than the pending write and iovec it saves.
    public static let coalescingLimit = 4096
    /// Frames up to this size (header included) are written into `spare`: heartbeat pings and
    /// pongs, close frames and short messages allocate nothing. What a connection keeps between
    /// frames stays this small (NIO's encoder kept a 14-byte header buffer per connection).
    static let spareCapacity = 128

    /// The buffer the last small frame went out in, rewritten by the next once the socket has
    /// taken it (its pending write let go, so this is its only owner).
    private var spare: ByteBuffer?

    public init() {}

    /// The bytes of `frame`: one buffer, or a header and the payload as it came (a large
    /// unmasked one). The caller's payload is never written to.
    public mutating func encode(_ frame: WebSocketFrame, allocator: ByteBufferAllocator) -> (
        first: ByteBuffer, payload: ByteBuffer?
    ) {
        var payload = frame.data
        if var extensionData = frame.extensionData {  // vigild sets none; kept for frames a test builds
            extensionData.writeBuffer(&payload)
            payload = extensionData
        }
        let length = payload.readableBytes
        let headerLength = Self.headerLength(payload: length, masked: frame.maskKey != nil)
        if frame.maskKey == nil && length > Self.coalescingLimit {
            var header = buffer(capacity: headerLength, allocator: allocator)
            header.writeWithUnsafeMutableBytes(minimumWritableBytes: headerLength) { bytes in
                Self.setHeader(of: frame, payload: length, in: bytes)
            }
            keep(header)
            return (header, payload)
        }
        var bytes = buffer(capacity: headerLength + length, allocator: allocator)
        bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: headerLength + length) { bytes in
            let start = Self.setHeader(of: frame, payload: length, in: bytes)
            let body = UnsafeMutableRawBufferPointer(rebasing: bytes[start..<start + length])
            payload.withUnsafeReadableBytes { body.copyMemory(from: $0) }
            if let key = frame.maskKey { WebSocketMasking.apply(key, to: body) }
            return start + length
        }
        keep(bytes)
        return (bytes, nil)
    }

    /// An empty buffer for `capacity` bytes: `spare` (taken out, so that writing to it does not
    /// copy it) when it is big enough and no pending write holds it any more. While one still
    /// does, the spare is kept for when it lets go, and the frame gets a buffer of its own size
    /// (a backed-up connection queuing small frames holds what they need, not 128 bytes each).
    private mutating func buffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard capacity <= Self.spareCapacity else { return allocator.buffer(capacity: capacity) }
        guard var buffer = spare.take() else { return allocator.buffer(capacity: Self.spareCapacity) }
        if buffer.modifyIfUniquelyOwned({ $0.clear() }) != nil { return buffer }
        spare = buffer
        return allocator.buffer(capacity: capacity)
    }

    /// The buffer a frame went out in becomes the spare when there is none (it was the spare,
    /// taken out, or the first).
    private mutating func keep(_ buffer: ByteBuffer) {
        if spare == nil && buffer.capacity <= Self.spareCapacity { spare = buffer }
    }

    /// Header bytes for a payload of `payload` bytes: two, the extended length (none, 2 or 8)
    /// and the masking key (4) when masked.
    static func headerLength(payload: Int, masked: Bool) -> Int {
        let extended = payload < 126 ? 0 : payload <= Int(UInt16.max) ? 2 : 8
        return 2 + extended + (masked ? 4 : 0)
    }

    /// RFC 6455 §5.2 at the start of `bytes`: FIN, RSV1-3 and the opcode; the mask bit and the
    /// shortest length encoding (big-endian); the masking key. Returns the header's length.
    @discardableResult
    static func setHeader(of frame: WebSocketFrame, payload: Int, in bytes: UnsafeMutableRawBufferPointer) -> Int {
        var first = UInt8(webSocketOpcode: frame.opcode)
        if frame.fin { first |= 0x80 }
        if frame.rsv1 { first |= 0x40 }
        if frame.rsv2 { first |= 0x20 }
        if frame.rsv3 { first |= 0x10 }
        let maskBit: UInt8 = frame.maskKey == nil ? 0 : 0x80
        bytes[0] = first
        var length: Int
        if payload < 126 {
            bytes[1] = UInt8(payload) | maskBit
            length = 2
        } else if payload <= Int(UInt16.max) {
            bytes[1] = 126 | maskBit
            bytes.storeBytes(of: UInt16(payload).bigEndian, toByteOffset: 2, as: UInt16.self)
            length = 4
        } else {
            bytes[1] = 127 | maskBit
            bytes.storeBytes(of: UInt64(payload).bigEndian, toByteOffset: 2, as: UInt64.self)
            length = 10
        }
        if let key = frame.maskKey {
            bytes[length] = key[0]
            bytes[length + 1] = key[1]
            bytes[length + 2] = key[2]
            bytes[length + 3] = key[3]
            length += 4
        }
        return length
    }
}
