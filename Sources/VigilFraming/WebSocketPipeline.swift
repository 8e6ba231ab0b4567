import NIOCore
import NIOWebSocket

/// Installs the framing core on an upgraded channel: our frame encoder (NIO's wire format, one
/// buffer per frame) and our stream decoder (NIO's parser).
/// Message assembly happens in the handler that follows (it owns a `WebSocketMessageAssembler`).
public enum WebSocketPipeline {
    public static func addFramingHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations, limits: FramingLimits
    ) throws {
        try pipeline.addHandler(FrameEncoder())
        try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: limits.maxFrameSize)))
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
