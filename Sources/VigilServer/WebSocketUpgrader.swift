import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import VigilConnection
import VigilFraming
import VigilHost
import VigilProxy
import VigilRealClient
import VigilRegistry
import VigilSupervisor
import VigilText

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
    /// This connection's `max_connections` slot, taken when the request is admitted.
    private let slot: ConnectionSlot
    /// Its count under the client's address, if the accept gate could not take it yet.
    private let counted: AddressCount
    private let acceptComputer: NIOWebSocketServerUpgrader

    /// An admitted request, until its upgrade completes.
    private struct Admission {
        var route: RouteTable.Route
        var client: String?
        var path: String
        var upgraded = false
        /// Proxy mode: the upstream leg already open, waiting for this client leg.
        var relay: UpstreamDial.Opened?
        /// Echo and command modes: the permessage-deflate this end agreed to, if any.
        var deflate: PerMessageDeflate.Agreement?
    }

    private var admitted: Admission?
    /// Why the first attempt failed. NIO's upgrade handler asks again for every further
    /// `websocket` the request lists in `Upgrade` after a refusal; the first answer stands.
    /// Asking anew reserved another slot each time (the earlier admission, and its slot, was
    /// overwritten and never given back) and in proxy mode dialed the upstream again: one
    /// request listing `websocket` a few times took `max_connections` slots for good.
    private var firstRefusal: (any Error)?

    init(server: ServerContext, handshake: HandshakeHandler, slot: ConnectionSlot, counted: AddressCount) {
        self.server = server
        self.handshake = handshake
        self.slot = slot
        self.counted = counted
        self.acceptComputer = NIOWebSocketServerUpgrader(
            maxFrameSize: server.host.limits.maxFrameSize, automaticErrorHandling: false,
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
    }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        if let firstRefusal {
            return channel.eventLoop.makeFailedFuture(firstRefusal)
        }
        let answer = firstAttempt(
            channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
        answer.assumeIsolated().whenFailure { error in self.firstRefusal = error }
        return answer
    }

    private func firstAttempt(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        if let refusal = handshake.admissionRefusal ?? handshake.origin.refusal
            ?? identifyClient(upgradeRequest.headers)
        {
            return channel.eventLoop.makeFailedFuture(refusal)
        }
        let (route, client): (RouteTable.Route, String?)
        switch server.routes.match(
            method: upgradeRequest.method, uri: upgradeRequest.uri, host: upgradeRequest.headers.first(name: "host"))
        {
        case .failure(let rejection):
            return channel.eventLoop.makeFailedFuture(rejection)
        case .success(let matched):
            (route, client) = matched
        }
        if let rejection = HandshakeRejection.checkHeaders(upgradeRequest.headers)
            ?? route.origins.check(upgradeRequest.headers)
        {
            return channel.eventLoop.makeFailedFuture(rejection)
        }
        guard slot.take() else {
            return channel.eventLoop.makeFailedFuture(
                HandshakeRejection(
                    status: .serviceUnavailable, reason: .capacity,
                    message: "vigild is at its limit of \(server.registry.maxConnections) connections; try again later",
                    extraHeaders: [("Retry-After", "5")]))
        }
        admitted = Admission(route: route, client: client, path: String(RequestTarget.split(upgradeRequest.uri).path))
        // If the connection dies before the upgrade completes, an upstream leg already open for
        // it is closed (its slot comes back with the socket).
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            guard let admission = self.admitted, !admission.upgraded else { return }
            self.admitted = nil
            admission.relay?.upstreamSink.connection?.close(Self.clientGone)
        }
        guard let rules = route.proxy else {
            let agreement = server.deflate.flatMap { configuration in
                PerMessageDeflate.accept(
                    PerMessageDeflate.offers(in: upgradeRequest.headers["sec-websocket-extensions"]),
                    configuration: configuration)
            }
            admitted?.deflate = agreement
            return acceptComputer.buildUpgradeResponse(
                channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders
            ).map { headers in
                var headers = headers
                if let agreement { headers.add(name: "Sec-WebSocket-Extensions", value: agreement.headerValue) }
                return headers
            }
        }
        handshake.upstreamDialStarted()
        let origin = handshake.origin
        let opened = UpstreamDial.open(
            rules, for: upgradeRequest, client: client, hop: origin.hop ?? "unknown",
            scheme: handshake.tls != nil ? "https" : origin.scheme ?? "http", channel: channel, host: server.host)
        return opened.assumeIsolated().flatMap { relay in
            if self.admitted == nil {
                relay.upstreamSink.connection?.close(Self.clientGone)  // it went away while the upstream answered
            }
            self.admitted?.relay = relay
            let subprotocol = relay.subprotocol
            let compression = relay.compression
            // NIO's upgrader builds its own headers; the upstream's choices are added to them.
            return self.acceptComputer.buildUpgradeResponse(
                channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders
            ).map { headers in
                var headers = headers
                if let subprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
                if let compression { headers.add(name: "Sec-WebSocket-Extensions", value: compression.headerValue) }
                return headers
            }
        }.nonisolated()
    }

    /// Behind a trusted hop, the client its forwarded headers name (`forwarded_header`); then,
    /// if nothing could before, counts the connection under the client's address
    /// (`max_connections_per_ip`): the refusal when that is over the limit.
    private func identifyClient(_ headers: HTTPHeaders) -> HandshakeRejection? {
        let origin = handshake.origin
        let chain =
            switch server.settings.forwardedHeader {
            case .xForwardedFor:
                ForwardedChain(
                    forwardedFor: headers[canonicalForm: "x-forwarded-for"].map(String.init),
                    forwardedProto: headers[canonicalForm: "x-forwarded-proto"].map(String.init))
            case .forwarded: ForwardedChain(forwarded: headers[canonicalForm: "forwarded"].map(String.init))
            }
        if !origin.forwarded(by: chain) {
            let hop = origin.hop ?? origin.tcpPeer
            // Clients behind their own (corporate) proxies send these too: worth a line, not a warning.
            server.untrustedLog.log(origin.logger(server.host.logger), level: .info, address: hop) { suppressed in
                "ignoring \(server.settings.forwardedHeader.rawValue) from \(hop): it is not in trusted_proxies"
                    + (suppressed > 0 ? " (\(suppressed) more since the last line)" : "")
                    + "; logged once a minute per address"
            }
        }
        guard !counted.isCounted, let address = origin.address else { return nil }
        return counted.count(address)
    }

    private static let clientGone = LocalClose(
        code: CloseStatus.goingAway, reason: "the client went away before its upgrade completed", cause: .partnerClosed)

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        guard var admission = admitted, !admission.upgraded, channel.isActive,
            let sink = admission.relay?.clientSink ?? admission.route.entry.mode.makeSink()
        else {
            // Closed before the upgrade could finish: the slot comes back with the socket.
            return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        admission.upgraded = true
        admitted = admission
        let host = server.host
        let now = host.clock.now()
        let identity = ConnectionIdentity(
            peer: handshake.origin.peer, client: admission.client,
            path: admission.path,
            leg: .client, pair: admission.relay?.pair,
            compression: (admission.deflate ?? admission.relay?.compression)?.headerValue,
            tls: handshake.tls?.facts, via: handshake.origin.via, route: admission.route.name)
        let books = host.openBooks(identity, at: now)
        books.logger.debug("connection opened")
        // The route's heartbeat as it is now: a reload during a proxy's upstream dial reached this
        // connection while it was not yet its route's.
        let policy = server.routes.route(named: admission.route.name)?.policy ?? admission.route.policy
        var configuration = SupervisedConnectionHandler.Configuration(
            role: .server, policy: policy, limits: host.limits)
        // A relay passes the client's pings to the backend instead of answering them itself.
        configuration.answersPings = admission.relay == nil
        let compression: MessageCompression =
            admission.relay?.compression.map { agreement in
                // A client that resets its context may have its compressed app pong read and
                // taken out (the heartbeat on, or turned on by a reload); one that keeps it may not.
                .relayed(
                    pongReader: agreement.clientNoContextTakeover
                        ? MessageDeflate(
                            agreement: agreement, role: .server, options: server.deflateOptions,
                            streams: host.deflateStreams, eventLoop: context.eventLoop) : nil)
            }
            ?? admission.deflate.map { agreement in
                .endpoint(
                    MessageDeflate(
                        agreement: agreement, role: .server, options: server.deflateOptions,
                        streams: host.deflateStreams,
                        eventLoop: context.eventLoop))
            } ?? .off
        let handler = SupervisedConnectionHandler(
            configuration: configuration, sink: sink, observer: books.observer,
            wheel: host.wheels.wheel(for: context.eventLoop),
            clock: host.clock, openedAt: now, compression: compression)
        let relay = admission.relay
        return context.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            pipeline.removeHandler(handshake.preview, promise: nil)
            pipeline.removeHandler(handshake, promise: nil)
            do {
                try WebSocketPipeline.addFramingHandlers(to: pipeline, limits: host.limits)
                try server.failpoints.check(.upgradePipeline)
                try pipeline.addHandler(handler)
                // A reload reaches it with its route's heartbeat from now on.
                host.channels.reclassify(channel, as: .client(route: admission.route.name))
            } catch {
                // Never supervised: no record and no ghost entry; an upstream leg must not wait,
                // and the socket is closed here (NIO's upgrade handler only passes the error on,
                // and the handshake deadline left with the handshake handler).
                host.registry.abandon(books.connection)
                books.logger.warning("cannot set up the upgraded connection: \(error)")
                // Its max_connections slot goes back before the socket closes: a client that
                // sees the close and reconnects at once, on another event loop, must find it free.
                slot.release()
                channel.close(promise: nil)
                relay?.upstreamSink.connection?.close(
                    LocalClose(
                        code: CloseStatus.goingAway, reason: "the client leg could not be set up", cause: .partnerClosed
                    ))
                throw error
            }
        }
    }
}

@available(*, unavailable)
extension WebSocketUpgrader: Sendable {}
