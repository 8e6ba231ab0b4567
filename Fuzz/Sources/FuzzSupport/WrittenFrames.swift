import NIOCore
import NIOEmbedded
import NIOWebSocket

/// Every frame in the bytes `channel` has written since the last call, read back by NIO's
/// decoder with its payload unmasked (the mask key kept): the shell writes bytes, the checks
/// look at frames. Bytes that are not whole frames stop the run.
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
    // Every byte is in a frame, and every header is the shortest: nothing left over.
    let framed = frames.reduce(0) { total, frame in
        let extended = frame.length < 126 ? 0 : frame.length <= 0xFFFF ? 2 : 8
        return total + 2 + extended + (frame.maskKey == nil ? 0 : 4) + frame.length
    }
    guard framed == bytes.readableBytes else {
        preconditionFailure("the shell wrote \(bytes.readableBytes) bytes, \(framed) of them in whole frames")
    }
    return frames
}
