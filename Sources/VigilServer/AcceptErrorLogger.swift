import Logging
import NIOCore

/// Logs what goes wrong on a listening socket: a failed accept (EMFILE when out of descriptors,
/// ENOBUFS, …) or a connection whose setup failed. At most one line a second, with a count of
/// the ones held back, so a flood cannot flood the log.
final class AcceptErrorLogger: ChannelInboundHandler {
    typealias InboundIn = Any

    private let logger: Logger
    private let listener: String
    private var lastLogged: NIODeadline?
    private var suppressed = 0

    init(logger: Logger, listener: String) {
        self.logger = logger
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let now = NIODeadline.now()
        if let last = lastLogged, now - last < .seconds(1) {
            suppressed += 1
            return
        }
        logger.warning(
            "\(listener): cannot accept a connection: \(error)",
            metadata: suppressed > 0 ? ["suppressed_since_last": "\(suppressed)"] : [:])
        lastLogged = now
        suppressed = 0
    }
}

@available(*, unavailable)
extension AcceptErrorLogger: Sendable {}
