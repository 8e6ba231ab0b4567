import NIOCore

/// First in an accepted connection's pipeline when `proxy_protocol` is on: reads the PROXY
/// header (never more), tells `received`, takes itself out and passes what followed on
/// untouched, to the TLS handler or the HTTP decoder. A connection that does not begin with a
/// header this listener accepts is told to `refused` and closed.
public final class ProxyHeaderReader: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let versions: Set<ProxyProtocolHeader.Version>
    private let received: (ProxyProtocolHeader) -> Void
    private let refused: (String) -> Void
    private var bytes: [UInt8] = []
    private var done = false

    public init(
        accepting versions: Set<ProxyProtocolHeader.Version>, received: @escaping (ProxyProtocolHeader) -> Void,
        refused: @escaping (String) -> Void
    ) {
        self.versions = versions
        self.received = received
        self.refused = refused
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        bytes += unwrapInboundIn(data).readableBytesView
        switch ProxyProtocolHeader.parse(bytes, accepting: versions) {
        case .needMore:
            return
        case .invalid(let why):
            done = true
            refused(why)
            context.close(promise: nil)
        case .header(let header):
            done = true
            received(header)
            let rest = bytes[header.length...]
            bytes = []
            if !rest.isEmpty {
                context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: rest)))
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}

@available(*, unavailable)
extension ProxyHeaderReader: Sendable {}
