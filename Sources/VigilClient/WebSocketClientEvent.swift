import VigilConnection
import VigilFraming
import VigilSupervisor

/// What a client connection observed, in order.
public enum WebSocketClientEvent: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// The server's close frame; `code` is `nil` when it carried no status.
    case close(code: UInt16?, reason: String)
    /// The server broke the protocol (as seen by the client's framing core); the client fails
    /// the connection.
    case violation(FramingError)
    /// The connection's one close record, as the client's supervisor classified it
    /// (`initiator: .local` is this client).
    case ended(CloseOutcome)
}

/// How a client connection behaves.
public struct WebSocketClientOptions: Sendable {
    /// Answer the server's pings with pongs (off: a peer dead to the heartbeat).
    public var answerPings = true
    /// Answer the server's close frame with one of our own (off: a peer that never completes
    /// the close handshake).
    public var answerClose = true
    /// Limits on what the server may send.
    public var limits = FramingLimits(maxFrameSize: 16 << 20, maxMessageSize: 64 << 20)
    /// The client's own supervision: no pings of its own by default (the server's heartbeat is
    /// what tests watch), a 5 s close timeout, and room for large echoes.
    public var policy = SupervisionPolicy(
        pingInterval: .zero, closeTimeout: .seconds(5), writeTimeout: .zero, maxBacklog: 64 << 20,
        backlogCeiling: 1 << 40)

    public init() {}

    var configuration: SupervisedConnectionHandler.Configuration {
        var configuration = SupervisedConnectionHandler.Configuration(role: .client, policy: policy, limits: limits)
        configuration.answersPings = answerPings
        configuration.answersClose = answerClose
        return configuration
    }
}
