import NIOCore
import NIOSSL
import NIOTLS
import VigilRegistry
import VigilText

/// One connection's TLS handshake on the WebSocket listener, as the handlers around the TLS
/// handler see it and the handshake guard and upgrader read it. Confined to the connection's
/// event loop.
public final class ListenerTLSSession {
    /// What the completed handshake agreed; `nil` until then.
    public private(set) var facts: TLSFacts?
    /// Why it failed, once it has.
    public private(set) var failure: TLSHandshakeFailure?
    /// Why vigild itself closed the connection before the TLS handshake completed (a deadline,
    /// a shutdown), if it did: the TLS handler then reports an end of file like any other.
    private var closedByVigild: TLSHandshakeFailure?
    private let report: (TLSHandshakeFailure) -> Void
    let witness = ServerNameWitness()
    /// The client's records until the handshake completes, for an alert it sent in the clear.
    var records = TLSRecordScanner()

    /// - Parameter report: told each failure once (to count and log it).
    public init(report: @escaping (TLSHandshakeFailure) -> Void) {
        self.report = report
    }

    /// The handshake deadline (or a refused connection's short one, `deadline`) ran out: if the
    /// TLS handshake is still going, its failure is a timeout.
    public func noteDeadlinePassed(_ deadline: String = "handshake_timeout") {
        closedByVigild = TLSHandshakeFailure(reason: .timeout, detail: "no completed TLS handshake within \(deadline)")
    }

    /// vigild is closing the connection (a shutdown) while its TLS handshake may be going.
    public func noteClosing(_ why: String) {
        closedByVigild = TLSHandshakeFailure(reason: .closed, detail: "vigild closed it mid-handshake (\(why))")
    }

    func complete(version: TLSVersion?) {
        let name = witness.serverName.map { Printable.escaped($0[...], limit: 253) }
        facts = TLSFacts(version: version.map(TLSNames.text) ?? "TLS", serverName: name)
    }

    func fail(_ failure: TLSHandshakeFailure) {
        guard facts == nil, self.failure == nil else { return }
        var failure = failure
        if let closedByVigild, failure.reason == .closed {
            failure = closedByVigild  // the TLS handler's end of file is vigild's own doing
        }
        self.failure = failure
        report(failure)
    }

    func connectionEnded() {
        fail(TLSHandshakeFailure(reason: .closed, detail: "the client closed the connection mid-handshake"))
    }
}

@available(*, unavailable)
extension ListenerTLSSession: Sendable {}

extension ListenerTLS {
    /// Puts TLS in front of an accepted connection's pipeline: the front guard, the TLS
    /// handler with the current context, and the watch behind it. Call on the event loop,
    /// before the HTTP handlers are added.
    public func install(on pipeline: ChannelPipeline.SynchronousOperations, session: ListenerTLSSession) throws {
        let front = TLSFrontGuard(session: session)
        let tls = NIOSSLServerHandler(context: context)
        try pipeline.addHandler(front)
        try pipeline.addHandler(tls)
        try pipeline.addHandler(TLSHandshakeWatch(session: session, tls: tls, front: front))
    }
}

/// In front of the TLS handler until the handshake completes. It answers a first byte that
/// cannot begin a TLS handshake (plain HTTP on the TLS port) with a plain-text 400 at once,
/// instead of leaving the client waiting until the handshake timeout, and it makes the
/// connection's server-name witness current around each read (see `ServerNameWitness`).
final class TLSFrontGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A TLS record carrying a handshake message (the ClientHello) begins with this byte.
    static let handshakeRecord: UInt8 = 0x16

    private let session: ListenerTLSSession
    private var checked = false
    private var refused = false

    init(session: ListenerTLSSession) {
        self.session = session
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let bytes = unwrapInboundIn(data)
        if !checked, let first = bytes.readableBytesView.first {
            checked = true
            if first != Self.handshakeRecord {
                refused = true
                refusePlainText(context: context, first: bytes.readableBytesView.prefix(16))
                return
            }
        }
        session.records.scan(bytes.readableBytesView)
        session.witness.whileCurrent { context.fireChannelRead(data) }
    }

    private func refusePlainText(context: ChannelHandlerContext, first: ByteBufferView.SubSequence) {
        let looksLikeHTTP = first.allSatisfy { $0 >= 0x20 && $0 < 0x7F || $0 == 0x0D || $0 == 0x0A }
        session.fail(
            TLSHandshakeFailure(
                reason: .plainHTTP,
                detail: looksLikeHTTP
                    ? "plain HTTP on the TLS port (\"\(Printable.escaped(String(decoding: first, as: UTF8.self)[...], limit: 16))…\")"
                    : "the first byte is 0x\(String(first.first!, radix: 16)), not a TLS handshake"))
        let body = "This port speaks TLS: use https:// or wss:// (vigild's WebSocket listener).\n"
        let head =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        let buffer = context.channel.allocator.buffer(string: head + body)
        // Half-close once the answer is out, and read (and drop) what else the client sends until
        // it closes or a second passes: closing with its request unread would make the kernel
        // reset the connection, and the reset can overtake the 400.
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(mode: .output).assumeIsolated().whenFailure { _ in context.close(promise: nil) }
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension TLSFrontGuard: Sendable {}

/// Behind the TLS handler until the handshake completes: records what it agreed, or why it
/// failed, then takes itself and the front guard out of the pipeline.
final class TLSHandshakeWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let session: ListenerTLSSession
    private let tls: NIOSSLServerHandler
    private let front: TLSFrontGuard

    init(session: ListenerTLSSession, tls: NIOSSLServerHandler, front: TLSFrontGuard) {
        self.session = session
        self.tls = tls
        self.front = front
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            session.complete(version: tls.tlsVersion)
            let pipeline = context.pipeline.syncOperations
            pipeline.removeHandler(front, promise: nil)
            pipeline.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Before the handshake completed: the TLS handler failed it (and closes).
        session.fail(TLSHandshakeFailure.classify(error, clientAlert: session.records.alert))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.connectionEnded()
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension TLSHandshakeWatch: Sendable {}
