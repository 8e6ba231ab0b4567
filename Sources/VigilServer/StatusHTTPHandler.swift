import NIOCore
import NIOHTTP1

/// Serves the status API over HTTP/1.1 with keep-alive; NIO's pipelining handler orders
/// pipelined requests, and a request that does not parse gets a JSON error (400, or 431 for an
/// oversized head) before the connection closes.
final class StatusHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: StatusRouter
    private var request: HTTPRequestHead?
    private var failed = false

    init(router: StatusRouter) {
        self.router = router
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break  // the API takes no bodies; ignore rather than buffer them
        case .end:
            guard let head = request else { return }
            request = nil
            respond(router.respond(method: head.method, uri: head.uri), to: head, context: context)
        }
    }

    /// A request the HTTP decoder could not parse: a JSON error, then close (the stream is lost).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError, !failed else {
            context.close(promise: nil)
            return
        }
        failed = true
        let response = StatusResponse.error(RawHTTPResponse.status(for: parseError), "malformed HTTP request: \(parseError)")
        RawHTTPResponse.send(
            response.status, contentType: response.contentType, body: String(decoding: response.body, as: UTF8.self),
            context: context)
    }

    private func respond(_ response: StatusResponse, to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = request.isKeepAlive
        var head = HTTPResponseHead(version: request.version, status: response.status)
        head.headers.add(name: "Content-Type", value: response.contentType)
        head.headers.add(name: "Content-Length", value: "\(response.body.count)")
        head.headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in response.headers { head.headers.add(name: name, value: value) }
        if !keepAlive { head.headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var body = context.channel.allocator.buffer(capacity: response.body.count)
        body.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension StatusHTTPHandler: Sendable {}
