import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Stops a listener from spinning when accept(2) fails for want of resources (EMFILE when the
/// process is out of descriptors, ENFILE, ENOBUFS, ENOMEM): it stops reading the listening
/// socket for `delay`, then tries again. Meanwhile new connections wait in the kernel's queue.
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the pipeline's `read` calls, but after a failed
/// accept NIO's server channel keeps its read pending and stays registered for readability, so
/// epoll wakes it again at once and no `read` ever reaches the handler. Measured here with the
/// handler installed and every descriptor in use: 2,352 failing accept4(2) calls in one second
/// and a core at 98 %. Turning `autoRead` off unregisters the socket from epoll; turning it back on
/// re-registers it.
public final class AcceptPause: ChannelInboundHandler {
    public typealias InboundIn = Any

    /// How long a listener waits before accepting again after accept(2) ran out of resources.
    public static let retryDelay = TimeAmount.milliseconds(100)

    private let delay: TimeAmount
    private var resume: Scheduled<Void>?

    public init(delay: TimeAmount = AcceptPause.retryDelay) {
        self.delay = delay
    }

    /// A listener's channel initializer that adds the pause (for `ServerBootstrap.serverChannelInitializer`).
    @Sendable public static func install(on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(AcceptPause())
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode), resume == nil,
            let options = context.channel.syncOptions, (try? options.setOption(.autoRead, value: false)) != nil
        {
            resume = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                self.resume = nil
                try? context.channel.syncOptions?.setOption(.autoRead, value: true)
            }
        }
        context.fireErrorCaught(error)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
    }
}

@available(*, unavailable)
extension AcceptPause: Sendable {}
