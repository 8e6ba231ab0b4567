import NIOCore
import NIOHTTP1

/// An HTTP answer after which the connection closes: every refusal vigild sends instead of
/// serving (a refused WebSocket handshake, a request that does not parse, a status client over
/// its limits). One writer, so each says the same things the same way: the status line,
/// `Content-Type`, `Content-Length`, `Connection: close`, any headers of its own, the body.
///
/// It goes out as bytes, below the HTTP encoder: after a parse error neither the decoder nor
/// NIO's pipelining helper is in a state to carry a response, and the status API's connection
/// guard answers in front of the codec.
public struct HTTPErrorResponse: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)]

    public init(
        _ status: HTTPResponseStatus, body: [UInt8], contentType: String = "text/plain; charset=utf-8",
        headers: [(String, String)] = []
    ) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    /// A plain-text answer: `message` and a newline.
    public init(_ status: HTTPResponseStatus, message: String, headers: [(String, String)] = []) {
        self.init(status, body: Array((message + "\n").utf8), headers: headers)
    }

    /// 431 for an oversized request head, 400 for anything else malformed.
    public static func status(for error: HTTPParserError) -> HTTPResponseStatus {
        error == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
    }

    /// The response as it goes on the wire.
    public func encoded(allocator: ByteBufferAllocator) -> ByteBuffer {
        var head = "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: \(contentType)\r\n"
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var buffer = allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        return buffer
    }

    /// Writes the response from below the HTTP encoder (from `context` itself when the
    /// pipeline has none, as in front of the codec) and closes the connection once it is out.
    public func send(closing context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        let writer = (try? pipeline.context(handlerType: HTTPResponseEncoder.self)) ?? context
        write(from: writer).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Writes the response from `writer` and flushes it; the caller closes.
    public func write(from writer: ChannelHandlerContext) -> EventLoopFuture<Void> {
        writer.writeAndFlush(NIOAny(encoded(allocator: writer.channel.allocator)))
    }
}
