import CompressNIO
import NIOConcurrencyHelpers
import NIOCore

/// How vigild compresses what it compresses (the settings' `compression_*` keys).
public struct DeflateOptions: Sendable, Hashable {
    /// zlib's level, 1 (fastest) to 9 (smallest).
    public var level: Int
    /// Messages shorter than this go uncompressed (RSV1 clear is always allowed): deflate's
    /// headers and the CPU are not worth it for a few bytes.
    public var minimumSize: Int

    public init(level: Int = 1, minimumSize: Int = 128) {
        self.level = level
        self.minimumSize = minimumSize
    }
}

/// The zlib streams of each event loop, shared by that loop's connections for every direction
/// in which the sender resets its context after each message: a compressor or decompressor that
/// is reset after each message holds nothing of it, so one per loop serves every connection, and
/// an idle connection with compression holds no zlib state of its own (about 300 KiB per
/// connection otherwise: a 128 KiB window and 128 KiB of hash chains to deflate, 32 KiB to inflate).
/// A direction whose sender keeps its context gets streams of the connection's own.
public final class DeflateStreams: Sendable {
    private let loops = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<LoopStreams>]>([:])

    public init() {}

    /// `eventLoop`'s streams. Call on that loop.
    func streams(for eventLoop: any EventLoop) -> LoopStreams {
        let key = ObjectIdentifier(eventLoop)
        return loops.withLockedValue { loops in
            if let existing = loops[key] { return existing }
            let created = NIOLoopBound(LoopStreams(), eventLoop: eventLoop)
            loops[key] = created
            return created
        }.value
    }

    /// One loop's shared streams, by window bits (and level, for compressors).
    final class LoopStreams {
        private var compressors: [Int: ZlibCompressor] = [:]
        private var decompressors: [Int: ZlibDecompressor] = [:]

        func compressor(windowBits: Int, level: Int) throws -> ZlibCompressor {
            let key = windowBits << 8 | level
            if let existing = compressors[key] { return existing }
            let created = try MessageDeflate.makeCompressor(windowBits: windowBits, level: level)
            compressors[key] = created
            return created
        }

        /// The chunk zlib inflates into, kept between messages (inflating is synchronous on the
        /// loop, so one serves all): a message does not allocate 64 KiB to inflate a few bytes.
        private var scratch: ByteBuffer?

        func takeScratch(allocator: ByteBufferAllocator) -> ByteBuffer {
            guard var chunk = scratch else { return allocator.buffer(capacity: MessageDeflate.chunkSize) }
            scratch = nil
            chunk.clear()
            return chunk
        }

        func returnScratch(_ chunk: ByteBuffer) {
            scratch = chunk
        }

        func decompressor(windowBits: Int) throws -> ZlibDecompressor {
            if let existing = decompressors[windowBits] { return existing }
            let created = try ZlibDecompressor(algorithm: .deflate, windowSize: Int32(windowBits))
            decompressors[windowBits] = created
            return created
        }
    }
}

/// One connection's permessage-deflate, once agreed: inflates the compressed messages it
/// receives (never past `max_message`) and deflates those it sends. Confined to the
/// connection's event loop.
public final class MessageDeflate {
    public let agreement: PerMessageDeflate.Agreement
    private let outbound: PerMessageDeflate.Direction
    private let inbound: PerMessageDeflate.Direction
    private let options: DeflateOptions
    private let shared: DeflateStreams.LoopStreams
    /// This connection's own streams, for a direction whose sender keeps its context.
    private var ownCompressor: ZlibCompressor?
    private var ownDecompressor: ZlibDecompressor?

    /// The four bytes a sync flush ends with, which the sender strips and the receiver restores.
    static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    public init(
        agreement: PerMessageDeflate.Agreement, role: WebSocketRole, options: DeflateOptions, streams: DeflateStreams,
        eventLoop: any EventLoop
    ) {
        self.agreement = agreement
        (outbound, inbound) = agreement.directions(for: role)
        self.options = options
        self.shared = streams.streams(for: eventLoop)
    }

    // MARK: - Inflating

    /// The message a compressed payload stands for, at most `limit` bytes. zlib inflates into a
    /// scratch chunk of at most 64 KiB, appended to the message only while the total stays
    /// within `limit`: a small frame that would inflate to a gigabyte is refused (1009) once it
    /// passes `limit`, having held no more than `limit` bytes and one chunk. A message that ends
    /// its deflate stream (a final block, RFC 7692 §7.2.3.3) leaves the stream reset for the next.
    public func inflate(_ payload: ByteBuffer, limit: Int, allocator: ByteBufferAllocator) throws(FramingError)
        -> ByteBuffer
    {
        let decompressor: ZlibDecompressor
        do {
            decompressor = try inflater()
        } catch {
            throw FramingError(.messageTooBig, "cannot inflate: \(error)")
        }
        // A shared stream is reset after every message; a connection's own after one that ends
        // its stream or fails (the connection is failed then anyway).
        var reset = inbound.noContextTakeover
        defer {
            if reset { try? decompressor.reset() }
        }
        var input = allocator.buffer(capacity: payload.readableBytes + Self.tail.count)
        var compressed = payload
        input.writeBuffer(&compressed)
        input.writeBytes(Self.tail)
        var output = allocator.buffer(capacity: min(limit, max(256, payload.readableBytes * 2)))
        var chunk = shared.takeScratch(allocator: allocator)
        defer { shared.returnScratch(chunk) }
        var done = false
        while !done {
            chunk.clear()
            do {
                try decompressor.inflate(from: &input, to: &chunk)
                done = true  // the input is used up, or the stream ended
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // The chunk is full and zlib has more: take it and go on.
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                done = true  // nothing left to read: the message is whole
            } catch {
                reset = true
                throw FramingError(.protocolError, "compressed message does not inflate (\(error))")
            }
            guard output.readableBytes + chunk.readableBytes <= limit else {
                reset = true
                throw FramingError(.messageTooBig, "message exceeds \(limit) bytes once inflated")
            }
            output.writeBuffer(&chunk)
        }
        if input.readableBytes > 0 {
            // The stream ended inside the message: all that may follow is the tail added here.
            reset = true
            guard input.readableBytes <= Self.tail.count else {
                throw FramingError(.protocolError, "compressed message has data after its final deflate block")
            }
        }
        if output.capacity > 2 * max(output.readableBytes, 4096) {
            // Do not keep a mostly empty buffer alive with the message (it may be echoed, queued).
            var exact = allocator.buffer(capacity: output.readableBytes)
            exact.writeBuffer(&output)
            return exact
        }
        return output
    }

    /// The most zlib inflates at once before its output is counted against the limit.
    static let chunkSize = 64 * 1024

    private func inflater() throws -> ZlibDecompressor {
        if inbound.noContextTakeover { return try shared.decompressor(windowBits: inbound.windowBits) }
        if let ownDecompressor { return ownDecompressor }
        let created = try ZlibDecompressor(algorithm: .deflate, windowSize: Int32(inbound.windowBits))
        ownDecompressor = created
        return created
    }

    // MARK: - Deflating

    /// The compressed payload to send for `data` (RSV1 set), or `nil` to send it as it is (RSV1
    /// clear: it touches neither end's context, RFC 7692 §6): it is shorter than the minimum
    /// size, or, without context takeover, compressing it would not make it smaller. With
    /// context takeover a message once deflated is in the context, so it goes compressed.
    public func deflate(_ data: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        if data.readableBytes < options.minimumSize { return nil }
        guard let compressor = try? deflater() else { return nil }
        var input = data
        var output = allocator.buffer(capacity: compressor.maxSize(from: input))
        do {
            if input.readableBytes > 0 {
                try compressor.deflate(from: &input, to: &output, flush: .sync)
            } else {
                output.writeBytes([0x00, 0x00, 0x00, 0xFF, 0xFF])  // RFC 7692 §7.2.3.6: an empty block
            }
        } catch {
            try? compressor.reset()
            return nil
        }
        guard input.readableBytes == 0 else {
            // Not all of it went in (deflateBound's room should always do): a cut message must
            // not go out compressed. A shared or own context is out of step now: start afresh.
            try? compressor.reset()
            return nil
        }
        if outbound.noContextTakeover { try? compressor.reset() }
        // A sync flush ends with an empty stored block, 00 00 FF FF, which the receiver restores.
        if output.readableBytes >= Self.tail.count,
            output.getBytes(at: output.writerIndex - Self.tail.count, length: Self.tail.count) == Self.tail
        {
            output.moveWriterIndex(to: output.writerIndex - Self.tail.count)
        }
        if outbound.noContextTakeover && output.readableBytes >= data.readableBytes { return nil }
        return output
    }

    private func deflater() throws -> ZlibCompressor {
        // zlib's raw deflate does not do an 8-bit window: 9 keeps its matches within 250 bytes
        // (the window less 262), inside what an 8-bit window allows.
        let bits = max(outbound.windowBits, 9)
        if outbound.noContextTakeover { return try shared.compressor(windowBits: bits, level: options.level) }
        if let ownCompressor { return ownCompressor }
        let created = try Self.makeCompressor(windowBits: bits, level: options.level)
        ownCompressor = created
        return created
    }

    static func makeCompressor(windowBits: Int, level: Int) throws -> ZlibCompressor {
        try ZlibCompressor(
            algorithm: .deflate,
            configuration: ZlibConfiguration(
                windowSize: Int32(windowBits), compressionLevel: Int32(level), memoryLevel: 8))
    }
}

@available(*, unavailable)
extension MessageDeflate: Sendable {}

@available(*, unavailable)
extension DeflateStreams.LoopStreams: Sendable {}
