import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import VigilClient
import VigilConnection
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// vigild's WebSocket upgrader, one per accepted TCP connection.
///
/// Before agreeing to upgrade it checks the route, method, client name, WebSocket headers and
/// capacity, refusing with a `HandshakeRejection` (answered by `HandshakeHandler`). In proxy mode
/// it then dials the upstream first and answers the client only once the upstream has: 101 with
/// the upstream's subprotocol, or the upstream's own refusal, or 502/504. NIO's upgrader computes
/// `Sec-WebSocket-Accept`; the pipeline after the upgrade is ours, because NIO's would install
/// its own frame decoder and error handler, which can tell neither mid-frame EOF nor why a frame
/// was refused.
final class WebSocketUpgrader: HTTPServerProtocolUpgrader {
    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []

    private let server: ServerContext
    private let handshake: HandshakeHandler
    private let acceptComputer: NIOWebSocketServerUpgrader

    /// An admitted request, holding its `max_connections` slot until the upgrade completes.
    private struct Admission {
        var client: String?
        var path: String
        var holdsSlot = true
        /// Proxy mode: the upstream leg already open, waiting for this client leg.
        var relay: Relay?
    }

    private struct Relay {
        var pair: PairLink
        var clientSink: RelaySink
        var upstreamSink: RelaySink
    }

    private var admitted: Admission?
    /// Why the first attempt failed. NIO's upgrade handler asks again for every further
    /// `websocket` the request lists in `Upgrade` after a refusal; the first answer stands.
    /// Asking anew reserved another slot each time (the earlier admission, and its slot, was
    /// overwritten and never given back) and in proxy mode dialed the upstream again: one
    /// request listing `websocket` a few times took `max_connections` slots for good.
    private var firstRefusal: (any Error)?

    init(server: ServerContext, handshake: HandshakeHandler) {
        self.server = server
        self.handshake = handshake
        self.acceptComputer = NIOWebSocketServerUpgrader(
            maxFrameSize: server.limits.maxFrameSize, automaticErrorHandling: false,
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
    }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        if let firstRefusal {
            return channel.eventLoop.makeFailedFuture(firstRefusal)
        }
        let answer = firstAttempt(channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
        answer.assumeIsolated().whenFailure { error in self.firstRefusal = error }
        return answer
    }

    private func firstAttempt(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        if let refusal = handshake.admissionRefusal {
            return channel.eventLoop.makeFailedFuture(refusal)
        }
        let client: String?
        switch server.route.match(method: upgradeRequest.method, uri: upgradeRequest.uri) {
        case .failure(let rejection):
            return channel.eventLoop.makeFailedFuture(rejection)
        case .success(let name):
            client = name
        }
        if let rejection = HandshakeRejection.checkHeaders(upgradeRequest.headers)
            ?? server.origins.withLockedValue({ $0 }).check(upgradeRequest.headers)
        {
            return channel.eventLoop.makeFailedFuture(rejection)
        }
        guard server.registry.reserve() else {
            return channel.eventLoop.makeFailedFuture(
                HandshakeRejection(
                    status: .serviceUnavailable, reason: "capacity",
                    message: "vigild is at its limit of \(server.registry.maxConnections) connections; try again later",
                    extraHeaders: [("Retry-After", "5")]))
        }
        let path = String(WebSocketRoute.split(upgradeRequest.uri).path)
        admitted = Admission(client: client, path: path)
        // If the connection dies before the upgrade completes, the slot must come back, and an
        // upstream leg already open for it is closed.
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            guard let admission = self.admitted, admission.holdsSlot else { return }
            self.admitted = nil
            self.server.registry.release()
            admission.relay?.upstreamSink.connection?.close(
                LocalClose(code: CloseStatus.goingAway, reason: "the client went away before its upgrade completed", cause: .partnerClosed))
        }
        guard let rules = server.proxyRules() else {
            return acceptComputer.buildUpgradeResponse(
                channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
        }
        return dialUpstream(rules, for: upgradeRequest, client: client, channel: channel).assumeIsolated().flatMap { subprotocol in
            // NIO's upgrader builds its own headers; the upstream's choice is added to them.
            self.acceptComputer.buildUpgradeResponse(
                channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders
            ).map { headers in
                var headers = headers
                if let subprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
                return headers
            }
        }.nonisolated()
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        guard var admission = admitted, admission.holdsSlot, channel.isActive,
            let sink = admission.relay?.clientSink ?? server.settings.mode.makeSink()
        else {
            // Closed before the upgrade could finish: the close callback gives the slot back.
            return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        admission.holdsSlot = false  // the registry entry now owns the slot
        admitted = admission
        let now = server.clock.now()
        let peer = channel.remoteAddress?.endpointDescription ?? "unknown"
        let connection = server.registry.open(
            peer: peer, client: admission.client, path: admission.path, leg: .client, pair: admission.relay?.pair, at: now)
        var logger = server.logger
        logger[metadataKey: "ws_conn_id"] = "\(connection.id)"
        logger[metadataKey: "ws_peer"] = "\(peer)"
        logger[metadataKey: "ws_client"] = "\(admission.client ?? "")"
        logger[metadataKey: "ws_path"] = "\(admission.path)"
        if let pair = admission.relay?.pair {
            logger[metadataKey: "ws_pair_id"] = "\(pair.pairID)"
            logger[metadataKey: "ws_leg"] = "client"
        }
        logger.debug("connection opened")
        var configuration = SupervisedConnectionHandler.Configuration(
            role: .server, policy: server.policy.withLockedValue { $0 }, limits: server.limits)
        // A relay passes the client's pings to the backend instead of answering them itself.
        configuration.answersPings = admission.relay == nil
        let handler = SupervisedConnectionHandler(
            configuration: configuration,
            sink: sink,
            observer: RegistryObserver(connection: connection, registry: server.registry, logger: logger),
            wheel: server.wheels.wheel(for: context.eventLoop), clock: server.clock, openedAt: now)
        let relay = admission.relay
        return context.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            pipeline.removeHandler(handshake.preview, promise: nil)
            pipeline.removeHandler(handshake, promise: nil)
            do {
                try WebSocketPipeline.addFramingHandlers(to: pipeline, limits: server.limits)
                try server.failpoints.check(.upgradePipeline)
                try pipeline.addHandler(handler)
            } catch {
                // Never supervised: no record and no ghost entry; an upstream leg must not wait,
                // and the socket is closed here (NIO's upgrade handler only passes the error on,
                // and the handshake deadline left with the handshake handler).
                server.registry.abandon(connection)
                logger.warning("cannot set up the upgraded connection: \(error)")
                channel.close(promise: nil)
                relay?.upstreamSink.connection?.close(
                    LocalClose(code: CloseStatus.goingAway, reason: "the client leg could not be set up", cause: .partnerClosed))
                throw error
            }
        }
    }

    // MARK: - Proxy mode

    /// Opens the upstream leg for this client on the client's own event loop, so both legs of
    /// the pair run on one thread. Succeeds with the subprotocol the upstream chose; fails with
    /// the rejection the client gets.
    private func dialUpstream(
        _ rules: ProxyRules, for request: HTTPRequestHead, client: String?, channel: any Channel
    ) -> EventLoopFuture<String?> {
        let server = self.server
        let eventLoop = channel.eventLoop
        (try? channel.pipeline.syncOperations.handler(type: HandshakeHandler.self))?.upstreamDialStarted()
        let pair = PairLink(pairID: server.registry.makePairID(), upstream: rules.upstream.description)
        let (clientSink, upstreamSink) = RelaySink.pair(upstreamFailureCode: rules.failureCode)
        let clientAddress = channel.remoteAddress?.ipAddress ?? "unknown"
        let forwarded = ForwardedRequest.make(for: request, clientAddress: clientAddress, rules: rules)
        // Backends commonly send a message as one frame: the upstream leg takes frames up to
        // max_message (still the bound on what one message holds); towards the client vigild
        // re-frames within max_frame.
        let upstreamLimits = FramingLimits(
            maxFrameSize: max(server.limits.maxFrameSize, min(server.limits.maxMessageSize, Int(UInt32.max))),
            maxMessageSize: server.limits.maxMessageSize)
        var configuration = SupervisedConnectionHandler.Configuration(
            role: .client, policy: rules.upstreamPolicy, limits: upstreamLimits)
        configuration.answersPings = false
        let sinkBox = NIOLoopBound(upstreamSink, eventLoop: eventLoop)
        let dialed = WebSocketDialer.dial(
            forwarded, on: eventLoop, timeout: rules.connectTimeout, tls: rules.tls, configuration: configuration,
            wheels: server.wheels,
            makeParts: { upstreamChannel, _ in
                server.channels.add(upstreamChannel, kind: .upstream)
                let peer = upstreamChannel.remoteAddress?.endpointDescription ?? rules.upstream.hostHeader
                let path = String(WebSocketRoute.split(forwarded.target).path)
                let connection = server.registry.open(
                    peer: peer, client: client, path: path, leg: .upstream, pair: pair, holdsSlot: false,
                    at: server.clock.now())
                var logger = server.logger
                logger[metadataKey: "ws_conn_id"] = "\(connection.id)"
                logger[metadataKey: "ws_peer"] = "\(peer)"
                logger[metadataKey: "ws_client"] = "\(client ?? "")"
                logger[metadataKey: "ws_path"] = "\(path)"
                logger[metadataKey: "ws_pair_id"] = "\(pair.pairID)"
                logger[metadataKey: "ws_leg"] = "upstream"
                logger.debug("upstream leg opened", metadata: ["upstream": "\(rules.upstream)"])
                return (sinkBox.value, RegistryObserver(connection: connection, registry: server.registry, logger: logger))
            })
        return dialed.assumeIsolated().flatMapErrorThrowing { error in
            throw Self.rejection(for: error, rules: rules)
        }.map { connection in
            self.admitted?.relay = Relay(pair: pair, clientSink: clientSink, upstreamSink: upstreamSink)
            if self.admitted == nil {
                // The client went away while the upstream was answering.
                upstreamSink.connection?.close(
                    LocalClose(code: CloseStatus.goingAway, reason: "the client went away before its upgrade completed", cause: .partnerClosed))
            }
            return connection.subprotocol
        }.nonisolated()
    }

    /// What the client hears when the upstream could not be opened: the upstream's own refusal
    /// (status, `Retry-After`, `WWW-Authenticate`, up to 4 KiB of body), 504 when it did not
    /// answer in time, 502 for everything else.
    static func rejection(for error: any Error, rules: ProxyRules) -> HandshakeRejection {
        let upstream = rules.upstream.description
        guard let failure = error as? DialFailure else {
            return HandshakeRejection(status: .badGateway, reason: "upstream_unreachable", message: "upstream \(upstream): \(error)")
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
                reason: "upstream_refused",
                message: "upstream \(upstream) refused the upgrade: HTTP \(refusal.status) \(refusal.reason): \"\(WebSocketRoute.printable(preview[...]))\"",
                extraHeaders: headers,
                body: (refusal.body, refusal.header("Content-Type") ?? "text/plain; charset=utf-8"))
        case .timeout:
            return HandshakeRejection(status: .gatewayTimeout, reason: "upstream_timeout", message: "upstream \(upstream): \(failure)")
        default:
            return HandshakeRejection(status: .badGateway, reason: "upstream_unreachable", message: "upstream \(upstream): \(failure)")
        }
    }
}

@available(*, unavailable)
extension WebSocketUpgrader: Sendable {}
