import NIOCore
import NIOHTTP1
import VigilHost
import VigilText

/// Serves the status API over HTTP/1.1 with keep-alive; NIO's pipelining handler orders
/// pipelined requests, and a request that does not parse gets a JSON error (400, or 431 for an
/// oversized head) before the connection closes. Access (Host, token) is checked before routing;
/// a response is held back while the connection cannot take more output.
final class StatusHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: StatusRouter
    private let access: @Sendable () -> StatusAccess
    private let transport: StatusAccess.Transport
    private let connectionGuard: StatusConnectionGuard
    private var request: HTTPRequestHead?
    /// A complete request waiting for the connection to become writable.
    private var deferred: HTTPRequestHead?
    private var failed = false
    /// Set once this connection serves `/closes/stream`: it answers nothing else after.
    private var stream: CloseStream?

    init(
        router: StatusRouter, access: @escaping @Sendable () -> StatusAccess, transport: StatusAccess.Transport,
        connectionGuard: StatusConnectionGuard
    ) {
        self.router = router
        self.access = access
        self.transport = transport
        self.connectionGuard = connectionGuard
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            connectionGuard.requestHeadReceived()
        case .body:
            break  // the API takes no bodies; ignore rather than buffer them
        case .end:
            guard let head = request else { return }
            request = nil
            if context.channel.isWritable {
                respond(to: head, context: context)
            } else {
                deferred = head
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let head = deferred {
            deferred = nil
            respond(to: head, context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// A request the HTTP decoder could not parse: a JSON error, then close (the stream is lost).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError, !failed else {
            context.close(promise: nil)
            return
        }
        failed = true
        let response = StatusResponse.error(
            HTTPErrorResponse.status(for: parseError), "malformed HTTP request: \(parseError)")
        HTTPErrorResponse(response.status, body: response.body, contentType: response.contentType).send(
            closing: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stream?.stop()
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        guard stream == nil else { return }  // a streaming connection takes no more requests
        let path = RequestTarget.split(request.uri).path
        let refusal = access().check(
            path: path, headers: request.headers, version: request.version, transport: transport)
        if refusal == nil, path == "/closes/stream", request.method == .GET {
            switch router.streamFilter(uri: request.uri) {
            case .success(let filter):
                let stream = CloseStream(registry: router.registry)
                self.stream = stream
                stream.start(filter: filter, version: request.version, context: context)
                return
            case .failure(let refused):
                return send(refused.response, for: request, context: context)
            }
        }
        send(refusal ?? router.respond(method: request.method, uri: request.uri), for: request, context: context)
    }

    private func send(_ response: StatusResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
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
        // Before the end goes out: NIO's pipelining handler may hand over the next (pipelined)
        // request while the end is written.
        if keepAlive { connectionGuard.responseCompleted() }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension StatusHTTPHandler: Sendable {}
