import NIOCore
import NIOWebSocket

/// Installs the framing core's decoding half on an upgraded channel: our stream decoder (NIO's
/// parser). Message assembly happens in the handler that follows (it owns a
/// `WebSocketMessageAssembler`), and so does encoding (its `OutboundWriter` owns a `FrameEncoder`
/// and writes bytes).
public enum WebSocketPipeline {
    public static func addFramingHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations, limits: FramingLimits
    ) throws {
        try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: limits.maxFrameSize)))
    }

    /// The decoder's context: bytes written there go to the socket as they are, below the
    /// supervised connection (a test client's malformed frames).
    public static func rawWriter(in pipeline: ChannelPipeline.SynchronousOperations) throws -> ChannelHandlerContext {
        try pipeline.context(handlerType: ByteToMessageHandler<WebSocketFrameStreamDecoder>.self)
    }

    /// Maps an error from NIO's frame decoder to the close it earns. `nil` for other errors
    /// (transport failures), which are not the peer's protocol violations.
    public static func framingError(from error: any Error) -> FramingError? {
        switch error {
        case let error as FramingError:
            return error
        case NIOWebSocketError.invalidFrameLength:
            return FramingError(.messageTooBig, "frame exceeds the size limit")
        case NIOWebSocketError.fragmentedControlFrame:
            return FramingError(.protocolError, "fragmented control frame")
        case NIOWebSocketError.multiByteControlFrameLength:
            return FramingError(.protocolError, "control frame longer than 125 bytes")
        default:
            return nil
        }
    }
}
