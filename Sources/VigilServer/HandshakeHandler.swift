import Logging
import NIOCore
import NIOHTTP1
import VigilConnection
import VigilHost
import VigilRegistry
import VigilSupervisor
import VigilTLS
import VigilText

/// Guards a TCP connection until its WebSocket upgrade completes: it enforces the handshake
/// timeout and answers every request that does not become a WebSocket (a refused handshake, a
/// plain HTTP request) with a short HTTP error, then closes. Removed by the upgrader on success.
final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ServerContext
    /// What the connection sent first, for the log line of a request that does not parse.
    let preview: RequestPreview
    /// Who the client is (the TCP peer, or whom a trusted balancer named).
    let origin: ClientOrigin
    /// This connection's log lines name its client as known at the time.
    private var logger: Logger { origin.logger(server.host.logger) }
    private var timeout: Scheduled<Void>?
    /// Why the upgrader refused this request; the request head follows the error.
    private var rejection: HandshakeRejection?
    /// Whether this connection's failure has been counted (answered, timed out or malformed).
    private var settled = false

    /// Why the accept gate refused this connection before it sent anything (see `AcceptGate`).
    let admissionRefusal: HandshakeRejection?
    /// Whether this connection counts against `max_pending_handshakes` until the handler goes.
    private var countsAsPending: Bool
    /// The connection's TLS handshake, on a TLS listener: its deadline is this handler's.
    let tls: ListenerTLSSession?

    init(
        server: ServerContext, preview: RequestPreview, origin: ClientOrigin,
        admissionRefusal: HandshakeRejection? = nil, tls: ListenerTLSSession? = nil
    ) {
        self.server = server
        self.preview = preview
        self.origin = origin
        self.admissionRefusal = admissionRefusal
        self.countsAsPending = admissionRefusal == nil
        self.tls = tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let refusal = admissionRefusal {
            // A refused connection gets a short while to send the request it is answered on.
            timeout = context.eventLoop.assumeIsolated().scheduleTask(in: AcceptGate.refusalTimeout) {
                self.tls?.noteDeadlinePassed("the 2 s a refused connection has to send its request")
                self.settle(refusal.reason)
                context.close(promise: nil)
            }
            return
        }
        let limit = server.settings.handshakeTimeout
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(limit.inNanoseconds)) {
            self.server.handshakeLog.log(
                self.logger, level: .info, "handshake timeout: no completed WebSocket upgrade",
                metadata: ["timeout_ms": "\(Int64(limit.inMilliseconds))"], on: context.eventLoop)
            self.tls?.noteDeadlinePassed()
            self.settle(.handshakeTimeout)
            context.close(promise: nil)
        }
    }

    /// Proxy mode: the client's request is in and vigild is dialing the upstream, whose own
    /// deadline (`upstream_connect_timeout`) bounds the wait from here; the client's deadline
    /// stops, so it gets its 502, 504 or the upstream's refusal instead of being dropped.
    func upstreamDialStarted() {
        timeout?.cancel()
        timeout = nil
    }

    /// On the upgrade (the upgrader removes this handler) and when the connection closes.
    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
        if countsAsPending {
            countsAsPending = false
            server.gate.handshakeEnded()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let refused = error as? HandshakeRejection {
            rejection = refused
        } else if let parseError = error as? HTTPParserError {
            guard !settled else { return }
            let status = HTTPErrorResponse.status(for: parseError)
            settle(status == .badRequest ? .badRequest : .headersTooLarge)
            let received = preview.printable
            server.handshakeLog.log(
                logger, level: .info, "rejected handshake: malformed HTTP (\(parseError)) in \"\(received)\"",
                metadata: ["status": "\(status.code)", "first_bytes": "\(received)"], on: context.eventLoop)
            HTTPErrorResponse(status, message: "malformed HTTP request: \(parseError)").send(closing: context)
        } else {
            logger.debug("error before the upgrade", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data), !settled else { return }
        let refusal = rejection ?? admissionRefusal ?? origin.refusal ?? plainRequestRejection(request)
        settle(refusal.reason)
        if refusal.reason == .perIPLimit, let address = origin.address {
            server.gate.logAddressRefusal(logger, address: address, message: refusal.message)
        } else {
            server.handshakeLog.log(
                logger, level: .info, "rejected handshake: \(refusal.message)",
                metadata: [
                    "status": "\(refusal.status.code)", "reason": "\(refusal.reason.rawValue)",
                    "uri": "\(Printable.escaped(request.uri[...]))",
                ],
                on: context.eventLoop)
        }
        refusal.response.send(closing: context)
    }

    /// Still here when the connection closes: the upgrade never completed. A peer that hangs up
    /// mid-handshake (or before sending anything, like a TCP health check) is counted, quietly.
    func channelInactive(context: ChannelHandlerContext) {
        if !settled && origin.healthCheck {
            settled = true  // a balancer's health check (PROXY LOCAL or UNKNOWN), counted there: no refusal
        } else if !settled && origin.refusedProxyHeader {
            settled = true  // counted as proxy_protocol when the header was refused
        }
        if !settled {
            if let failure = tls?.failure, failure.reason != .closed {
                settle(.tls)  // counted and logged by reason as a failed TLS handshake
            } else {
                settle(.closedDuringHandshake)
                logger.debug("connection closed before the WebSocket handshake completed")
            }
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is CloseRequest {
            tls?.noteClosing("shutting down")
            if !settled { settle(.shutdown) }
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func settle(_ reason: HandshakeRejectionReason) {
        settled = true
        server.registry.noteRejectedHandshake(reason)
    }

    /// A request without `Upgrade: websocket`: 426 on the WebSocket route, 404 elsewhere.
    private func plainRequestRejection(_ request: HTTPRequestHead) -> HandshakeRejection {
        let (path, _) = RequestTarget.split(request.uri)
        let routes = server.routes
        let host = request.headers.first(name: "host")
        if routes.route(for: path, host: host) != nil {
            return HandshakeRejection(
                status: .upgradeRequired, reason: .notWebSocket,
                message: "\(Printable.escaped(path)) accepts WebSocket upgrades only (send Upgrade: websocket)",
                extraHeaders: [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")])
        }
        return routes.notFound(path, host: host)
    }
}

@available(*, unavailable)
extension HandshakeHandler: Sendable {}
