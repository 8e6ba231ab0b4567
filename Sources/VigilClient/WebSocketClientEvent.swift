import VigilFraming

/// What a client connection observed, in order.
public enum WebSocketClientEvent: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// The server's close frame; `code` is `nil` when it carried no status.
    case close(code: UInt16?, reason: String)
    /// The server broke the protocol (as seen by the client's framing core).
    case violation(FramingError)
    /// The TCP stream ended; `midFrame` when it stopped inside a frame.
    case inputEnded(midFrame: Bool)
    /// Reading or writing failed (for instance a reset).
    case transportError(String)
}

/// How a client connection behaves.
public struct WebSocketClientOptions: Sendable {
    /// Answer the server's pings with pongs (a load generator's `--no-pong` turns this off).
    public var answerPings = true
    /// Answer the server's close frame with one of our own (completing the close handshake).
    public var answerClose = true
    /// Limits on what the server may send.
    public var limits = FramingLimits(maxFrameSize: 16 << 20, maxMessageSize: 64 << 20)

    public init() {}
}

public enum WebSocketClientError: Error, Hashable, CustomStringConvertible {
    /// The server answered the handshake with something other than a valid 101.
    case upgradeRefused
    /// The connection closed before the handshake completed.
    case closedDuringHandshake

    public var description: String {
        switch self {
        case .upgradeRefused: "the server refused the WebSocket upgrade"
        case .closedDuringHandshake: "the connection closed before the WebSocket handshake completed"
        }
    }
}
