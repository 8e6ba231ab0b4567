import NIOCore
import NIOEmbedded
import NIOWebSocket

/// Every frame in the bytes `channel` has written since the last call, read back by NIO's
/// decoder with its payload unmasked (the mask key kept): the shell writes bytes, the checks
/// look at frames. Bytes of a frame not finished are left out.
public func writtenFrames(_ channel: EmbeddedChannel) -> [WebSocketFrame] {
    var bytes = ByteBuffer()
    while var buffer = (try? channel.readOutbound(as: ByteBuffer.self)) ?? nil { bytes.writeBuffer(&buffer) }
    let decoder = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: Int(UInt32.max))))
    defer { _ = try? decoder.finish() }
    guard (try? decoder.writeInbound(bytes)) != nil else {
        preconditionFailure("the shell wrote bytes that are not WebSocket frames")
    }
    var frames: [WebSocketFrame] = []
    while var frame = (try? decoder.readInbound(as: WebSocketFrame.self)) ?? nil {
        frame.data = frame.unmaskedData
        frames.append(frame)
    }
    return frames
}
