import Logging
import NIOCore
import VigilConnection
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// Keeps one connection's books: its live entry's counters (relaxed atomics, no shared lock),
/// the RTT histogram, and at the end its close record in the registry and its close line in
/// the log.
public final class RegistryObserver: ConnectionObserver {
    private let connection: LiveConnection
    private let registry: ConnectionRegistry
    private let logger: Logger
    /// Also told of each measured round trip (a monitor target's own histogram).
    public var roundTripMeasured: ((Duration) -> Void)?
    /// Also told of the close record once it is stored (a monitor target schedules its redial).
    public var recorded: ((CloseRecord) -> Void)?

    init(connection: LiveConnection, registry: ConnectionRegistry, logger: Logger) {
        self.connection = connection
        self.registry = registry
        self.logger = logger
    }

    public func frameReceived(at now: MonotonicInstant) {
        connection.noteSeen(at: now)
    }

    public func messageReceived(_ message: WebSocketMessage) {
        connection.noteMessageIn(bytes: message.data.readableBytes)
    }

    public func messageSent(bytes: Int) {
        connection.noteMessageOut(bytes: bytes)
    }

    public func compressedMessageReceived() {
        connection.noteCompressedIn()
    }

    public func compressedMessageSent() {
        connection.noteCompressedOut()
    }

    public func pingSent() {
        connection.notePingSent()
    }

    public func pongReceived(_ payload: ByteBuffer, roundTrip: Duration?) {
        connection.notePongReceived(roundTrip: roundTrip)
        if let roundTrip {
            registry.noteRoundTrip(roundTrip, leg: connection.identity.leg)
            roundTripMeasured?(roundTrip)
        }
    }

    public func appPingSent() {
        connection.noteAppPingSent()
    }

    public func appPongReceived(roundTrip: Duration) {
        connection.noteAppPongReceived(roundTrip: roundTrip)
        registry.noteAppRoundTrip(roundTrip)
    }

    public func violationDetected(_ error: FramingError) {
        logger.debug("protocol violation", metadata: ["detail": "\(error.detail)", "code": "\(error.closeCode)"])
    }

    public func transportFailed(_ error: any Error) {
        logger.debug("transport error", metadata: ["error": "\(error)"])
    }

    public func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {
        let record = registry.close(connection, outcome: outcome, at: now)
        CloseLogging.log(record, to: logger)
        recorded?(record)
    }
}

@available(*, unavailable)
extension RegistryObserver: Sendable {}
