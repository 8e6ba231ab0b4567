import NIOCore
import Synchronization

/// Keeps the WebSocket listener from accepting faster than accepted connections are set up.
///
/// Each accepted socket is handed to a connection's event loop, and only there does the
/// `AcceptGate` count it against the descriptor budget (and close it at once when over). The
/// listening loop does not wait for that: with the other loop busy it can accept on, so sockets
/// nobody has counted yet pile up beyond the budget, into the reserve kept for the status API
/// and the service manager, and accept(2) fails with EMFILE. Seen in CI: 120 connections
/// arriving together at a descriptor limit of 96. This handler counts sockets accepted but not
/// yet through their connection's set-up and stops reading the listener (`autoRead` off, which
/// takes it out of epoll) while `limit` of them are in flight; the set-up that brings the count
/// back below the limit turns reading on again. At most one read's batch
/// (`maxMessagesPerRead`) more than `limit` is ever uncounted.
final class AcceptThrottle: ChannelInboundHandler {
    typealias InboundIn = any Channel

    /// Sockets accepted ahead of their set-up, at most (a small share of the reserve).
    static let defaultLimit = 8

    private let limit: Int
    private let inFlight = InFlightCount()
    private var paused = false

    init(limit: Int = AcceptThrottle.defaultLimit) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let count = inFlight.value.wrappingAdd(1, ordering: .relaxed).newValue
        // The acceptor that follows queues the set-up on the child's loop; a task queued after
        // it there runs once the set-up (and a drop's close) is done.
        context.fireChannelRead(data)
        let listener = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: listener)
        let contextBox = NIOLoopBound(context, eventLoop: listener)
        let (inFlight, limit) = (self.inFlight, self.limit)
        child.eventLoop.execute {
            let left = inFlight.value.wrappingSubtract(1, ordering: .relaxed).newValue
            if left == limit - 1 {
                listener.execute { handler.value.resume(context: contextBox.value) }
            }
        }
        if count >= limit, !paused, (try? context.channel.syncOptions?.setOption(.autoRead, value: false)) != nil {
            paused = true
        }
    }

    private func resume(context: ChannelHandlerContext) {
        guard paused, inFlight.value.load(ordering: .relaxed) < limit else { return }
        paused = false
        try? context.channel.syncOptions?.setOption(.autoRead, value: true)
    }
}

/// The in-flight count, shared with the tasks queued on the connections' loops.
private final class InFlightCount: Sendable {
    let value = Atomic<Int>(0)
}

@available(*, unavailable)
extension AcceptThrottle: Sendable {}
