import NIOCore
import NIOHTTP1

/// An HTTP error response written as bytes below the HTTP encoder, for requests the HTTP decoder
/// could not parse: after a parse error the decoder (and NIO's pipelining helper) are in no state
/// to carry a response, but the peer still deserves a status and a line saying what was wrong.
enum RawHTTPResponse {
    static func send(
        _ status: HTTPResponseStatus, contentType: String, body: String, context: ChannelHandlerContext
    ) {
        let text = "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        let bytes = context.channel.allocator.buffer(string: text)
        let pipeline = context.pipeline.syncOperations
        // From the encoder's context the write goes straight to the socket.
        let writer = (try? pipeline.context(handlerType: HTTPResponseEncoder.self)) ?? context
        writer.writeAndFlush(NIOAny(bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// 431 for an oversized request head, 400 for anything else malformed.
    static func status(for error: HTTPParserError) -> HTTPResponseStatus {
        error == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
    }
}
