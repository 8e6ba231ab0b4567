import NIOCore
import VigilFraming
import VigilSupervisor

/// What happens to the messages of a supervised connection: echo or command replies on vigild's
/// own listener, a relay to the partner leg of a proxied pair, a load generator's loop.
///
/// Called on the connection's event loop only. The shell has already answered pings and close
/// frames and counted the message; a sink never sees control frames.
public protocol MessageSink: AnyObject {
    /// The connection is supervised: the sink may send from now on.
    func connectionOpened(_ connection: SupervisedConnectionHandler)
    /// A whole text or binary message arrived while the connection is open.
    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler)
    /// `connection.isWritable` changed. The default stops reading while the connection's own
    /// output is not draining, so a sink that answers on the same connection cannot be made to
    /// buffer without bound; a relay pauses the partner instead.
    func writabilityChanged(_ connection: SupervisedConnectionHandler)
    /// The remote end sent a ping. The shell has answered it already unless the connection's
    /// configuration says not to (a relay passes pings on instead).
    func pingReceived(_ payload: ByteBuffer, from connection: SupervisedConnectionHandler)
    /// A pong arrived that does not answer this end's own ping (a relay passes it on).
    func pongReceived(_ payload: ByteBuffer, from connection: SupervisedConnectionHandler)
    /// The connection ended with `outcome` (its only record).
    func connectionEnded(_ outcome: CloseOutcome, _ connection: SupervisedConnectionHandler)
}

extension MessageSink {
    public func connectionOpened(_ connection: SupervisedConnectionHandler) {}

    public func writabilityChanged(_ connection: SupervisedConnectionHandler) {
        if connection.isWritable {
            connection.resumeReading()
        } else {
            connection.pauseReading()
        }
    }

    public func pingReceived(_ payload: ByteBuffer, from connection: SupervisedConnectionHandler) {}

    public func pongReceived(_ payload: ByteBuffer, from connection: SupervisedConnectionHandler) {}

    public func connectionEnded(_ outcome: CloseOutcome, _ connection: SupervisedConnectionHandler) {}
}

/// Sends every message back unchanged, text as text and binary as binary.
public final class EchoSink: MessageSink {
    public init() {}

    public func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        connection.send(message)
    }
}

@available(*, unavailable)
extension EchoSink: Sendable {}
