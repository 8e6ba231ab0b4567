import NIOCore
import NIOPosix
import VigilConfig
import VigilConnection
import VigilFraming

/// Opens a `ws://` (or, with `tls`, `wss://`) client-role connection on vigil's framing core and supervised shell:
/// the same `SupervisedConnectionHandler` vigild runs for its own connections, here with
/// `role: .client` (masked frames, and after the close handshake the server closes TCP first).
/// `WebSocketClient` gives it an event stream; the load generator its own lean sink.
public enum WebSocketClientBootstrap {
    /// Timer wheels for client connections, one per event loop.
    public static let wheels = TimerWheels()
    /// The zlib streams client connections share, one set per event loop.
    public static let deflateStreams = DeflateStreams()

    /// How long a test or load connection may take to connect and upgrade.
    public static let timeout = Duration.seconds(30)

    /// Connects and completes the handshake for `target` (path and query, e.g. `/ws?client=a`);
    /// see `WebSocketDialer.dial`. Throws a `DialFailure`.
    ///
    /// - Parameters:
    ///   - localAddress: the source address to bind to, to spread many connections over several
    ///     loopback addresses (each has its own ephemeral ports).
    ///   - tls: `wss://` with this trust (one context shared by every connection); `nil`: `ws://`.
    ///   - makeParts: called on the channel's event loop once the upgrade completed: the
    ///     connection's message sink and observer.
    public static func connect(
        host: String, port: Int, target: String, localAddress: SocketAddress? = nil,
        configuration: SupervisedConnectionHandler.Configuration, group: any EventLoopGroup,
        extensions: UpgradeRequest.ExtensionOffer = .none, tls: WebSocketDialer.TLS? = nil,
        makeParts: @escaping @Sendable () -> (sink: any MessageSink, observer: any ConnectionObserver)
    ) async throws -> any Channel {
        let request = UpgradeRequest(
            url: WebSocketURL(secure: tls != nil, host: host, port: port), target: target, extensions: extensions)
        return try await WebSocketDialer.dial(
            request, on: group.next(), timeout: timeout, tls: tls, localAddress: localAddress,
            configuration: configuration, wheels: wheels, makeParts: { _, _ in makeParts() }
        ).get().channel
    }
}
