import NIOCore
import NIOWebSocket

/// Fired (as a user inbound event) when the byte stream ends, saying whether it ended between
/// frames or in the middle of one.
public struct WebSocketInputEnded: Sendable, Hashable {
    /// `true` when bytes of an incomplete frame were received before the end.
    public var midFrame: Bool

    public init(midFrame: Bool) {
        self.midFrame = midFrame
    }
}

/// NIO's `WebSocketFrameDecoder`, plus the one thing it cannot tell: whether the stream ended
/// between frames (a plain EOF) or inside a frame (a truncated frame).
///
/// NIO's decoder consumes header bytes as it goes and drops leftovers silently at EOF. This
/// wrapper counts the bytes consumed since the last complete frame; at the end of input, any
/// such bytes (or any still unread) mean the peer stopped mid-frame. No frame parsing of our own.
public final class WebSocketFrameStreamDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WebSocketFrame

    private let decoder: WebSocketFrameDecoder
    private var consumedSinceLastFrame = 0
    private var reportedEnd = false

    public init(maxFrameSize: Int) {
        self.decoder = WebSocketFrameDecoder(maxFrameSize: maxFrameSize)
    }

    public func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let start = buffer.readerIndex
        let state = try decoder.decode(context: context, buffer: &buffer)
        if state == .continue {
            consumedSinceLastFrame = 0  // a frame was emitted and ends exactly here
        } else {
            consumedSinceLastFrame += buffer.readerIndex - start
        }
        return state
    }

    public func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if !reportedEnd {
            reportedEnd = true
            let midFrame = consumedSinceLastFrame > 0 || buffer.readableBytes > 0
            context.fireUserInboundEventTriggered(WebSocketInputEnded(midFrame: midFrame))
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}

@available(*, unavailable)
extension WebSocketFrameStreamDecoder: Sendable {}
