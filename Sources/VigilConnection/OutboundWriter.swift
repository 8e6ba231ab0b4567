import NIOCore
import NIOWebSocket
import VigilFraming
import VigilSupervisor

/// The outbound half of a supervised connection, as swift-websocket's `WebSocketOutboundWriter`
/// is of its handler: frames encoded and written as bytes (`FrameEncoder`; masked when this end
/// is the client, RFC 6455 §5.3; messages longer than `max_frame` in fragments, so vigild never
/// sends a frame larger than it would accept), flushes batched while a read burst lasts, and
/// reading paused and resumed for backpressure. It holds no context: the handler passes its own
/// to each call, on its loop.
///
/// A class, not a struct the handler mutates in place: a write goes down the pipeline and can
/// come back into the handler (a failed write closes the channel), which must find the writer
/// free to use, not inside a mutating call still in progress.
final class OutboundWriter {
    private let role: WebSocketRole
    private let maxFrameSize: Int
    /// Compresses what this end sends, when it is a permessage-deflate endpoint.
    private let deflate: MessageDeflate?
    /// Where the client role's masking keys come from.
    private var maskingKeys = MaskingKeySource()
    /// Frames to bytes (with the buffer small frames are written into).
    private var encoder = FrameEncoder()
    /// Inside a burst of reads: writes wait for its end to be flushed together.
    private var inReadBurst = false
    /// Whether frames were written since the last flush.
    private var pendingFlush = false
    /// The buffer the last ping's payload was put in, rewritten by the next ping.
    private var pingBuffer: ByteBuffer?
    /// Reading is paused (backpressure); a `read` asked for meanwhile waits here.
    private(set) var readingPaused = false
    private var readPending = false

    init(role: WebSocketRole, maxFrameSize: Int, deflate: MessageDeflate?) {
        self.role = role
        self.maxFrameSize = maxFrameSize
        self.deflate = deflate
    }

    // MARK: - Frames

    func write(
        _ opcode: WebSocketOpcode, _ data: ByteBuffer, fin: Bool = true, rsv1: Bool = false,
        context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil
    ) {
        let frame = WebSocketFrame(
            fin: fin, rsv1: rsv1, opcode: opcode, maskKey: role == .client ? maskingKeys.key() : nil, data: data)
        write(frame, context: context, promise: promise)
    }

    /// `frame` as it is (its mask key, if any, applied on the way out): what the shell writes,
    /// and what a client program writes through the pipeline (tests build bad frames).
    func write(_ frame: WebSocketFrame, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let (first, payload) = encoder.encode(frame, allocator: context.channel.allocator)
        if let payload {
            context.write(NIOAny(first), promise: nil)
            context.write(NIOAny(payload), promise: promise)
        } else {
            context.write(NIOAny(first), promise: promise)
        }
        pendingFlush = true
    }

    /// A whole message: one frame, or fragments of `max_frame` bytes; compressed (RSV1 on its
    /// first frame) when it came compressed (a relay) or this end deflates it. `promise`
    /// completes when the kernel has taken its last frame. Returns whether it went compressed.
    @discardableResult
    func write(_ message: WebSocketMessage, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) -> Bool {
        let opcode: WebSocketOpcode = message.kind == .text ? .text : .binary
        var payload = message.data
        var compressed = message.compressed
        if !compressed, let deflate, let deflated = deflate.deflate(payload, allocator: context.channel.allocator) {
            payload = deflated
            compressed = true
        }
        guard payload.readableBytes > maxFrameSize else {
            write(opcode, payload, rsv1: compressed, context: context, promise: promise)
            return compressed
        }
        var first = true
        while let fragment = payload.readSlice(length: min(maxFrameSize, payload.readableBytes)) {
            let fin = payload.readableBytes == 0
            write(
                first ? opcode : .continuation, fragment, fin: fin, rsv1: first && compressed, context: context,
                promise: fin ? promise : nil)
            first = false
            if fin { break }
        }
        return compressed
    }

    /// A heartbeat ping. Its payload's buffer is rewritten for each ping (the encoder copies the
    /// payload into the frame's buffer, so nothing else holds it and `clear` copies nothing),
    /// and the frame goes out in the encoder's spare: a ping allocates nothing.
    func write(_ ping: PingPayload, context: ChannelHandlerContext) {
        var payload = pingBuffer ?? context.channel.allocator.buffer(capacity: 8)
        pingBuffer = nil
        payload.clear()
        payload.writeInteger(ping.value)  // big-endian, as `SupervisedConnectionHandler.pingPayload(in:)` reads it
        pingBuffer = payload
        write(.ping, payload, context: context)
    }

    func write(_ close: OutgoingClose, context: ChannelHandlerContext) {
        let payload = ClosePayload(code: close.code, reason: close.reason).encode(allocator: context.channel.allocator)
        write(.connectionClose, payload, context: context)
    }

    // MARK: - Flushing

    func readBurstBegan() {
        inReadBurst = true
    }

    /// Ends the read burst and flushes what it wrote. Returns whether the channel is left over
    /// its high water mark (the handler then tells its supervisor about the backlog).
    func readBurstEnded(context: ChannelHandlerContext) -> Bool {
        inReadBurst = false
        return flush(context: context)
    }

    /// Flushes now, unless a read burst is under way (its end flushes). Returns whether the
    /// channel is left over its high water mark.
    func flushUnlessReading(context: ChannelHandlerContext) -> Bool {
        inReadBurst ? false : flush(context: context)
    }

    /// Flushes what was written since the last flush. Returns whether the channel is left over
    /// its high water mark.
    func flush(context: ChannelHandlerContext) -> Bool {
        guard pendingFlush else { return false }
        pendingFlush = false
        context.flush()
        return !context.channel.isWritable
    }

    // MARK: - Reading (backpressure)

    func pauseReading() {
        readingPaused = true
    }

    func resumeReading(context: ChannelHandlerContext?) {
        guard readingPaused else { return }
        readingPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// The pipeline's `read`: passed on, or held while reading is paused.
    func read(context: ChannelHandlerContext) {
        if readingPaused {
            readPending = true
        } else {
            context.read()
        }
    }
}

@available(*, unavailable)
extension OutboundWriter: Sendable {}
