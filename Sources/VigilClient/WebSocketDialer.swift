import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import VigilConfig
import VigilConnection
import VigilFraming
import VigilRegistry
import VigilSupervisor
import VigilTLS
import VigilText

#if canImport(Glibc)
    import Glibc
#endif

/// An upgrade request to send: where, with which request target, subprotocol offer and
/// end-to-end headers (`Host`, `Upgrade`, `Connection` and the `Sec-WebSocket-*` handshake
/// fields are the dialer's own and are not taken from `headers`).
public struct UpgradeRequest: Sendable {
    public var url: WebSocketURL
    /// Path and query; by default the URL's own.
    public var target: String
    public var subprotocols: [String]
    public var headers: [HTTPHeaderField]
    /// What to offer in `Sec-WebSocket-Extensions`, and what to do with the answer.
    public var extensions: ExtensionOffer

    public init(
        url: WebSocketURL, target: String? = nil, subprotocols: [String] = [], headers: [HTTPHeaderField] = [],
        extensions: ExtensionOffer = .none
    ) {
        self.url = url
        self.target = target ?? url.requestTarget
        self.subprotocols = subprotocols
        self.headers = headers
        self.extensions = extensions
    }

    /// The extensions a dial offers.
    public enum ExtensionOffer: Sendable {
        case none
        /// permessage-deflate, which this end then does itself (a monitor target, vigil-load).
        case deflate(PerMessageDeflate.Configuration, DeflateOptions, DeflateStreams)
        /// A proxy's upstream leg: its client's own permessage-deflate offers, passed on; what the
        /// upstream agrees to is relayed, compressed messages as they are.
        case forwarded([String])

        var headerValue: String? {
            switch self {
            case .none: nil
            case .deflate(let configuration, _, _): PerMessageDeflate.offerHeader(configuration: configuration)
            case .forwarded(let offers): offers.isEmpty ? nil : offers.joined(separator: ", ")
            }
        }
    }

    /// Header names the dialer writes itself.
    static let ownHeaders: Set<String> = [
        "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
        "sec-websocket-extensions",
    ]

    /// The request head, as bytes. Headers whose name or value could break the head (CR, LF,
    /// NUL, a colon in the name) are left out rather than sent.
    func head(key: String) -> String {
        var lines = [
            "GET \(target) HTTP/1.1", "Host: \(url.hostHeader)", "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: \(key)", "Sec-WebSocket-Version: 13",
        ]
        if !subprotocols.isEmpty { lines.append("Sec-WebSocket-Protocol: " + subprotocols.joined(separator: ", ")) }
        if let offer = extensions.headerValue { lines.append("Sec-WebSocket-Extensions: " + offer) }
        for field in headers where !Self.ownHeaders.contains(field.name.lowercased()) && Self.isSafe(field) {
            lines.append("\(field.name): \(field.value)")
        }
        return lines.joined(separator: "\r\n") + "\r\n\r\n"
    }

    static func isSafe(_ field: HTTPHeaderField) -> Bool {
        !field.name.isEmpty && field.name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
            && field.value.utf8.allSatisfy { $0 != 13 && $0 != 10 && $0 != 0 }
    }
}

/// A connection the dialer opened and upgraded, with what the server answered.
public struct DialedConnection: Sendable {
    public var channel: any Channel
    /// The server's 101 headers.
    public var responseHeaders: [HTTPHeaderField]
    /// The subprotocol the server chose, if any.
    public var subprotocol: String?
    /// The permessage-deflate the server agreed to, if any.
    public var compression: PerMessageDeflate.Agreement?
}

/// What the server's 101 settled, as `makeParts` is told it.
public struct HandshakeAnswer: Sendable {
    /// The subprotocol the server chose, if any.
    public var subprotocol: String?
    /// The permessage-deflate the server agreed to, if any.
    public var compression: PerMessageDeflate.Agreement?
    /// A `wss://` connection's TLS: the version agreed and the name sent (SNI).
    public var tls: TLSFacts?
}

/// Dials WebSocket servers: TCP, TLS for `wss://` (swift-nio-ssl, the system's trust store plus
/// optional extra roots, SNI and hostname verification), the upgrade, and then the supervised
/// shell in the client role. Every failure is a `DialFailure` naming the phase.
public enum WebSocketDialer {
    /// TLS settings for `wss://` dials.
    public struct TLS: Sendable {
        let context: NIOSSLContext
        /// What certificates are checked against, for error messages.
        let trust: String

        /// The system's trust store, plus the PEM certificates in `caFile` when given.
        public init(caFile: String? = nil) throws {
            // Not the file's path: a proxy shows this to its clients in a 502.
            trust = caFile == nil ? "the system's trust store" : "the system's trust store and the configured CA file"
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile {
                configuration.additionalTrustRoots = [.file(caFile)]
            }
            configuration.certificateVerification = .fullVerification
            self.context = try NIOSSLContext(configuration: configuration)
        }
    }

    /// Opens the connection on `eventLoop` and completes the upgrade within `timeout` (TCP, TLS
    /// and the answer together), then installs the stream decoder and the supervised shell
    /// (which encodes its own frames) — all in the read that completed the handshake, so nothing
    /// sent behind the 101 is lost.
    ///
    /// - Parameters:
    ///   - tls: required for a `wss://` URL.
    ///   - configuration: the shell's rules; `role` must be `.client`. Its `maxBacklog` is the
    ///     channel's high water mark.
    ///   - makeParts: called on `eventLoop` once the server said 101, with the channel and the
    ///     subprotocol the server chose: the sink and the observer.
    public static func dial(
        _ request: UpgradeRequest, on eventLoop: any EventLoop, timeout: Duration, tls: TLS?,
        localAddress: SocketAddress? = nil, configuration: SupervisedConnectionHandler.Configuration,
        wheels: TimerWheels,
        makeParts:
            @escaping @Sendable (_ channel: any Channel, _ answer: HandshakeAnswer) -> (
                sink: any MessageSink, observer: any ConnectionObserver
            )
    ) -> EventLoopFuture<DialedConnection> {
        precondition(configuration.role == .client, "a dialed connection has the client role")
        let result = eventLoop.makePromise(of: DialedConnection.self)
        guard !request.url.secure || tls != nil else {
            result.fail(DialFailure.tls(reason: "no TLS configuration for \(request.url)"))
            return result.futureResult
        }
        let key = NIOWebSocketClientUpgrader.randomRequestKey()
        let limits = configuration.limits
        let backlog = configuration.policy.maxBacklog
        let url = request.url
        let sslContext = url.secure ? tls?.context : nil
        let trust = tls?.trust ?? ""
        let phase = NIOLockedValueBox("tcp")  // what the timeout interrupted
        let refusalSoFar = NIOLockedValueBox<HTTPRefusal?>(nil)  // a refusal whose body is still arriving
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(timeout.inNanoseconds))
            .channelOption(.writeBufferWaterMark, value: .init(low: backlog / 2, high: backlog))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        let handler = try NIOSSLClientHandler(
                            context: sslContext, serverHostname: isIPAddress(url.host) ? nil : url.host)
                        try pipeline.addHandler(handler)
                    }
                    let decoder = HandshakeResponseDecoder(
                        keyChecker: NIOWebSocketClientUpgrader(
                            requestKey: key,
                            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }),
                        offeredProtocols: request.subprotocols,
                        installFraming: { context, head in
                            let chosen = head.headers.first(name: "sec-websocket-protocol")
                            let (agreement, compression) = try settle(
                                request.extensions, answer: head.headers["sec-websocket-extensions"],
                                eventLoop: context.eventLoop)
                            let tls = (try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self))
                                .map { handler in
                                    TLSFacts(
                                        version: handler.tlsVersion.map(TLSNames.text) ?? "TLS",
                                        serverName: isIPAddress(url.host) ? nil : url.host)
                                }
                            let parts = makeParts(
                                context.channel,
                                HandshakeAnswer(subprotocol: chosen, compression: agreement, tls: tls))
                            let handler = SupervisedConnectionHandler(
                                configuration: configuration, sink: parts.sink, observer: parts.observer,
                                wheel: wheels.wheel(for: context.eventLoop), clock: wheels.clock,
                                openedAt: wheels.clock.now(), compression: compression)
                            // The decoder first: the bytes behind the 101 reach the shell
                            // through it, and a sink may send as soon as the shell is added.
                            let pipeline = context.pipeline.syncOperations
                            try WebSocketPipeline.addFramingHandlers(to: pipeline, limits: limits)
                            try pipeline.addHandler(handler)
                            // The handshake's handlers leave at the end of this read (they
                            // cost every later read a second byte-to-message pass).
                            try pipeline.handler(type: DialErrorCatcher.self).upgraded = true
                            result.succeed(
                                DialedConnection(
                                    channel: context.channel,
                                    responseHeaders: head.headers.map {
                                        HTTPHeaderField(name: $0.name, value: $0.value)
                                    },
                                    subprotocol: chosen, compression: agreement))
                        },
                        fail: { result.fail($0) },
                        refusalSoFar: { refusal in refusalSoFar.withLockedValue { $0 = refusal } })
                    try pipeline.addHandler(ByteToMessageHandler(decoder))
                    try pipeline.addHandler(
                        DialErrorCatcher(result: result, tlsTrust: sslContext != nil ? trust : nil, host: url.host))
                }
            }
        if let localAddress {
            bootstrap = bootstrap.bind(to: localAddress)
        }
        let deadline = eventLoop.scheduleTask(in: .nanoseconds(timeout.inNanoseconds)) {
            // The server answered with a refusal and is slow with its body: that answer stands.
            if let refusal = refusalSoFar.withLockedValue({ $0 }) {
                result.fail(DialFailure.refused(refusal))
            } else {
                result.fail(DialFailure.timeout(phase: phase.withLockedValue { $0 }, after: timeout))
            }
        }
        bootstrap.connect(host: url.host, port: url.port).whenComplete { connected in
            switch connected {
            case .failure(let error):
                result.fail(Self.failure(connecting: error, host: url.host, timeout: timeout))
            case .success(let channel):
                phase.withLockedValue { $0 = sslContext != nil ? "tls and upgrade" : "upgrade" }
                channel.writeAndFlush(channel.allocator.buffer(string: request.head(key: key)), promise: nil)
                channel.closeFuture.whenComplete { _ in result.fail(DialFailure.closedDuringHandshake) }
                result.futureResult.whenFailure { _ in channel.close(promise: nil) }
            }
        }
        result.futureResult.whenComplete { _ in deadline.cancel() }
        return result.futureResult
    }

    /// The dial failure a failed connect stands for.
    static func failure(connecting error: any Error, host: String, timeout: Duration) -> DialFailure {
        switch error {
        case ChannelError.connectTimeout:
            return .timeout(phase: "tcp", after: timeout)
        case let error as NIOConnectionError:
            if error.connectionErrors.isEmpty {
                let reason = [error.dnsAError, error.dnsAAAAError].compactMap { $0.map { "\($0)" } }.first
                return .resolution(host: host, reason: reason ?? "no address")
            }
            return .connection(
                reason: error.connectionErrors.map {
                    "\($0.target.ipAddress ?? "\($0.target)") port \($0.target.port ?? 0): \(describe($0.error))"
                }
                .joined(separator: "; "))
        default:
            return .connection(reason: describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            return String(cString: strerror(error.errnoCode))
        }
        return "\(error)"
    }

    /// What the server's `Sec-WebSocket-Extensions` answer settles, checked against the offer
    /// (RFC 7692 §5: an answer vigil cannot accept fails the connection).
    static func settle(_ offer: UpgradeRequest.ExtensionOffer, answer: [String], eventLoop: any EventLoop) throws
        -> (PerMessageDeflate.Agreement?, MessageCompression)
    {
        do {
            switch offer {
            case .none:
                let named = answer.filter { !$0.allSatisfy { $0 == " " || $0 == "\t" } }
                guard named.isEmpty else {
                    throw PerMessageDeflate.Refusal(
                        description:
                            "the server answered with extensions (\"\(Printable.escaped(named.joined(separator: ", ")))\") that were not offered"
                    )
                }
                return (nil, .off)
            case .deflate(let configuration, let options, let streams):
                guard let agreement = try PerMessageDeflate.agreement(inAnswer: answer, configuration: configuration)
                else {
                    return (nil, .off)
                }
                let deflate = MessageDeflate(
                    agreement: agreement, role: .client, options: options, streams: streams, eventLoop: eventLoop)
                return (agreement, .endpoint(deflate))
            case .forwarded(let offers):
                let agreement = try PerMessageDeflate.agreement(
                    inAnswer: answer, forOffers: PerMessageDeflate.offers(in: offers))
                return (agreement, agreement == nil ? .off : .relayed(pongReader: nil))
            }
        } catch let refusal as PerMessageDeflate.Refusal {
            throw DialFailure.badHandshake(reason: refusal.description)
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// Fails the dial when the pipeline reports an error before the upgrade completed (a TLS
/// certificate problem, a reset), and passes every error on for the shell after it.
private final class DialErrorCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let result: EventLoopPromise<DialedConnection>
    /// On a `wss://` dial, what certificates are checked against.
    private let tlsTrust: String?
    private let host: String

    init(result: EventLoopPromise<DialedConnection>, tlsTrust: String?, host: String) {
        self.result = result
        self.tlsTrust = tlsTrust
        self.host = host
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    /// Set once the framing handlers are in: at the end of the read that completed the upgrade,
    /// the handshake's handlers leave the pipeline. Then, not in the middle of that read: the
    /// decoder has handed on every byte behind the 101 by now, and the read's end reaches the
    /// framing core first (it flushes what the frames behind the 101 made it write). Removed
    /// mid-read, the decoder held those bytes and handed them on a tick later with no read's
    /// end behind them: an echo of a frame that came with the 101 was never flushed.
    var upgraded = false

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        guard upgraded else { return }
        upgraded = false
        let pipeline = context.pipeline.syncOperations
        if let decoder = try? pipeline.context(handlerType: ByteToMessageHandler<HandshakeResponseDecoder>.self) {
            pipeline.removeHandler(context: decoder, promise: nil)
        }
        pipeline.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tlsTrust, error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            let leaf = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
            result.fail(
                DialFailure.tls(
                    reason: TLSFailureReason.describe(error, leaf: leaf ?? nil, host: host, trust: tlsTrust)))
        } else {
            result.fail(DialFailure.connection(reason: WebSocketDialer.describe(error)))
        }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension DialErrorCatcher: Sendable {}
