import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import VigilConnection
import VigilFraming
import VigilRegistry

/// vigild's WebSocket upgrader, one per accepted TCP connection.
///
/// Before agreeing to upgrade it checks the route, method, client name, WebSocket headers and
/// capacity, refusing with a `HandshakeRejection` (answered by `HandshakeHandler`). NIO's upgrader
/// computes `Sec-WebSocket-Accept`; the pipeline after the upgrade is ours, because NIO's would
/// install its own frame decoder and error handler, which can tell neither mid-frame EOF nor
/// why a frame was refused.
final class WebSocketUpgrader: HTTPServerProtocolUpgrader {
    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []

    private let server: ServerContext
    private let handshake: HandshakeHandler
    private let acceptComputer: NIOWebSocketServerUpgrader
    /// The admitted request: client name, and whether a registry slot is held for it.
    private var admitted: (client: String?, holdsSlot: Bool)?

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
        let client: String?
        switch server.route.match(method: upgradeRequest.method, uri: upgradeRequest.uri) {
        case .failure(let rejection):
            return channel.eventLoop.makeFailedFuture(rejection)
        case .success(let name):
            client = name
        }
        if let rejection = HandshakeRejection.checkHeaders(upgradeRequest.headers) {
            return channel.eventLoop.makeFailedFuture(rejection)
        }
        guard server.registry.reserve() else {
            return channel.eventLoop.makeFailedFuture(
                HandshakeRejection(
                    status: .serviceUnavailable, reason: "capacity",
                    message: "vigild is at its limit of \(server.registry.maxConnections) connections; try again later",
                    extraHeaders: [("Retry-After", "5")]))
        }
        admitted = (client, true)
        // If the connection dies before the upgrade completes, the slot must come back.
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            if self.admitted?.holdsSlot == true {
                self.admitted = nil
                self.server.registry.release()
            }
        }
        return acceptComputer.buildUpgradeResponse(
            channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        guard let admission = admitted, admission.holdsSlot, channel.isActive else {
            // Closed before the upgrade could finish: the close callback gives the slot back.
            return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        admitted = (admission.client, false)  // the registry entry now owns the slot
        let now = ConnectionClock.system.now()
        let peer = channel.remoteAddress?.endpointDescription ?? "unknown"
        let connection = server.registry.open(peer: peer, client: admission.client, path: server.route.path, at: now)
        var logger = server.logger
        logger[metadataKey: "ws_conn_id"] = "\(connection.id)"
        logger[metadataKey: "ws_peer"] = "\(peer)"
        logger[metadataKey: "ws_client"] = "\(admission.client ?? "")"
        logger[metadataKey: "ws_path"] = "\(server.route.path)"
        logger.debug("connection opened")
        let handler = SupervisedConnectionHandler(
            configuration: .init(role: .server, policy: server.policy.withLockedValue { $0 }, limits: server.limits),
            sink: server.settings.mode.makeSink(),
            observer: RegistryObserver(connection: connection, registry: server.registry, logger: logger),
            wheel: server.wheels.wheel(for: context.eventLoop), openedAt: now)
        return context.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            pipeline.removeHandler(handshake.preview, promise: nil)
            pipeline.removeHandler(handshake, promise: nil)
            try WebSocketPipeline.addFramingHandlers(to: pipeline, limits: server.limits)
            try pipeline.addHandler(handler)
        }
    }
}

@available(*, unavailable)
extension WebSocketUpgrader: Sendable {}
