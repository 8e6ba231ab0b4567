import NIOCore
import NIOHTTP1
import VigilClient
import VigilConnection
import VigilFraming
import VigilHost
import VigilRegistry
import VigilSupervisor
import VigilText

/// Opens a client's upstream leg before the client is answered: the client hears 101 with the
/// upstream's subprotocol only once the upstream said 101, or the upstream's own refusal, or
/// 502/504 (`rejection(for:rules:)`).
public enum UpstreamDial {
    /// An upstream leg that answered, and the two relay halves that will join it to its client.
    public struct Opened {
        public let pair: PairLink
        public let clientSink: RelaySink
        public let upstreamSink: RelaySink
        /// What the upstream chose of the client's `Sec-WebSocket-Protocol` offer.
        public let subprotocol: String?
        /// The permessage-deflate the upstream agreed to, as the client is told it: both legs
        /// relay compressed messages as they are.
        public let compression: PerMessageDeflate.Agreement?
    }

    /// Dials the upstream for the client's `request` on the client's own event loop (`channel`),
    /// so both legs of the pair run on one thread. Fails with the `HandshakeRejection` the
    /// client gets. `hop`: the address vigild received the request from (the client, or the
    /// trusted balancer that appended the client to the request's `X-Forwarded-For`), which
    /// it appends in turn; `scheme`: how the client came (`https` over TLS).
    public static func open(
        _ rules: ProxyRules, for request: HTTPRequestHead, client: String?, hop: String, scheme: String,
        channel: any Channel, host: ConnectionHost
    ) -> EventLoopFuture<Opened> {
        let eventLoop = channel.eventLoop
        let pair = PairLink(pairID: host.registry.makePairID(), upstream: rules.upstream.description)
        let (clientSink, upstreamSink) = RelaySink.pair(upstreamFailureCode: rules.failureCode)
        var upgrade = ForwardedRequest.make(for: request, clientAddress: hop, scheme: scheme, rules: rules)
        if rules.compression {
            // Only the permessage-deflate offers vigild can parse: vigild must know what every
            // RSV bit means on both legs, so other extensions are not passed on.
            upgrade.extensions = .forwarded(
                PerMessageDeflate.offers(in: request.headers["sec-websocket-extensions"]).map(\.headerValue))
        }
        let forwarded = upgrade
        // Backends commonly send a message as one frame: the upstream leg takes frames up to
        // max_message (still the bound on what one message holds); towards the client vigild
        // re-frames within max_frame.
        let upstreamLimits = FramingLimits(
            maxFrameSize: max(host.limits.maxFrameSize, min(host.limits.maxMessageSize, Int(UInt32.max))),
            maxMessageSize: host.limits.maxMessageSize)
        var configuration = SupervisedConnectionHandler.Configuration(
            role: .client, policy: rules.upstreamPolicy, limits: upstreamLimits)
        configuration.answersPings = false  // the client's pings go through to the backend
        let sinkBox = NIOLoopBound(upstreamSink, eventLoop: eventLoop)
        let dialed = WebSocketDialer.dial(
            forwarded, on: eventLoop, timeout: rules.connectTimeout, tls: rules.tls, configuration: configuration,
            wheels: host.wheels,
            makeParts: { upstreamChannel, answer in
                host.channels.add(upstreamChannel, kind: .upstream)
                let identity = ConnectionIdentity(
                    peer: upstreamChannel.remoteAddress?.endpointDescription ?? rules.upstream.hostHeader,
                    client: client, path: String(RequestTarget.split(forwarded.target).path), leg: .upstream,
                    pair: pair, compression: answer.compression?.headerValue, tls: answer.tls)
                let books = host.openBooks(identity, at: host.clock.now())
                books.logger.debug("upstream leg opened", metadata: ["upstream": "\(rules.upstream)"])
                return (sinkBox.value, books.observer)
            })
        return dialed.assumeIsolated().flatMapErrorThrowing { error in
            throw rejection(for: error, rules: rules)
        }.map { connection in
            var compression = connection.compression
            if rules.appHeartbeat { compression?.clientNoContextTakeover = true }
            return Opened(
                pair: pair, clientSink: clientSink, upstreamSink: upstreamSink, subprotocol: connection.subprotocol,
                compression: compression)
        }.nonisolated()
    }

    /// What the client hears when the upstream could not be opened: the upstream's own refusal
    /// (status, `Retry-After`, `WWW-Authenticate`, up to 4 KiB of body), 504 when it did not
    /// answer in time, 502 for everything else.
    public static func rejection(for error: any Error, rules: ProxyRules) -> HandshakeRejection {
        let upstream = rules.upstream.description
        guard let failure = error as? DialFailure else {
            return HandshakeRejection(
                status: .badGateway, reason: .upstreamUnreachable, message: "upstream \(upstream): \(error)")
        }
        switch failure {
        case .refused(let refusal):
            var headers: [(String, String)] = []
            for name in ["Retry-After", "WWW-Authenticate"] {
                if let value = refusal.header(name) { headers.append((name, value)) }
            }
            let preview = String(decoding: refusal.body.prefix(200), as: UTF8.self)
            return HandshakeRejection(
                status: HTTPResponseStatus(statusCode: refusal.status, reasonPhrase: refusal.reason),
                reason: .upstreamRefused,
                message:
                    "upstream \(upstream) refused the upgrade: HTTP \(refusal.status) \(refusal.reason): \"\(Printable.escaped(preview))\"",
                extraHeaders: headers,
                body: (refusal.body, refusal.header("Content-Type") ?? "text/plain; charset=utf-8"))
        case .timeout:
            return HandshakeRejection(
                status: .gatewayTimeout, reason: .upstreamTimeout, message: "upstream \(upstream): \(failure)")
        default:
            return HandshakeRejection(
                status: .badGateway, reason: .upstreamUnreachable, message: "upstream \(upstream): \(failure)")
        }
    }
}
