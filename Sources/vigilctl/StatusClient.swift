import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where vigild's status API is: its Unix socket or a TCP address.
enum StatusEndpoint: Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
    }

    var hostHeader: String {
        switch self {
        case .unix: "localhost"
        case .tcp(let host, let port): "\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
    }
}

/// vigild could not be reached, or did not answer as an HTTP server would.
struct UnreachableError: Error, CustomStringConvertible {
    var endpoint: StatusEndpoint
    var reason: String
    var description: String { "cannot reach vigild at \(endpoint): \(reason)" }
}

/// One GET on the status API, over NIO's HTTP/1.1 client codec.
struct StatusClient: Sendable {
    let endpoint: StatusEndpoint
    /// Sent as `Authorization: Bearer …` on TCP (the Unix socket needs none).
    let token: String?

    /// The whole answer: status and body.
    func get(_ path: String) async throws -> (status: Int, body: [UInt8]) {
        try await request(path, onBody: nil)
    }

    /// Calls `onLine` with every line of a streamed body until vigild ends it.
    func stream(_ path: String, onLine: @escaping @Sendable (String) -> Void) async throws -> Int {
        let lines = LineSplitter(onLine: onLine)
        return try await request(path, onBody: { lines.feed($0) }).status
    }

    private func request(_ path: String, onBody: (@Sendable (ByteBuffer) -> Void)?) async throws -> (
        status: Int, body: [UInt8]
    ) {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: (status: Int, body: [UInt8]).self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, onBody: onBody))
                }
            }
        let channel: any Channel
        do {
            switch endpoint {
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            promise.fail(error)  // never to be completed by a channel
            throw UnreachableError(endpoint: endpoint, reason: Self.describe(error))
        }
        var headers = HTTPHeaders([("Host", endpoint.hostHeader), ("Connection", "close"), ("User-Agent", "vigilctl")])
        if let token, case .tcp = endpoint { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            return try await promise.futureResult.get()
        } catch {
            throw UnreachableError(endpoint: endpoint, reason: Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        if case ChannelError.connectTimeout = error { return "no answer within 5 s" }
        return "\(error)"
    }
}

/// Collects one response; streams the body instead when `onBody` is set.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<(status: Int, body: [UInt8])>
    private let onBody: (@Sendable (ByteBuffer) -> Void)?
    private var status: Int?
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<(status: Int, body: [UInt8])>, onBody: (@Sendable (ByteBuffer) -> Void)?) {
        self.promise = promise
        self.onBody = onBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let buffer):
            if let onBody, status == 200 {
                onBody(buffer)
            } else {
                body += buffer.readableBytesView
            }
        case .end:
            promise.succeed((status ?? 0, body))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let status, onBody != nil {
            promise.succeed((status, body))  // a stream ends when vigild closes it
        } else {
            promise.fail(ChannelError.eof)
        }
    }
}

@available(*, unavailable)
extension ResponseCollector: Sendable {}

/// Splits a byte stream into lines (NDJSON), carrying a partial line over to the next chunk.
private final class LineSplitter: Sendable {
    private let onLine: @Sendable (String) -> Void
    private let pending = NIOLockedValueBox<[UInt8]>([])

    init(onLine: @escaping @Sendable (String) -> Void) {
        self.onLine = onLine
    }

    func feed(_ buffer: ByteBuffer) {
        let lines = pending.withLockedValue { bytes -> [String] in
            bytes += buffer.readableBytesView
            var lines: [String] = []
            while let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: bytes[..<newline], as: UTF8.self))
                bytes.removeSubrange(...newline)
            }
            return lines
        }
        for line in lines { onLine(line) }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
