import NIOCore
import VigilConnection
import VigilFraming
import VigilSupervisor

/// `WebSocketClient`'s sink and observer at once: everything the connection sees becomes a
/// `WebSocketClientEvent`, in order.
final class ClientEventRecorder: MessageSink, ConnectionObserver {
    private let continuation: AsyncStream<WebSocketClientEvent>.Continuation

    init(continuation: AsyncStream<WebSocketClientEvent>.Continuation) {
        self.continuation = continuation
    }

    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        switch message.kind {
        case .text: continuation.yield(.text(String(decoding: message.data.readableBytesView, as: UTF8.self)))
        case .binary: continuation.yield(.binary(Array(message.data.readableBytesView)))
        }
    }

    /// A test client reads whatever comes; it never pauses itself.
    func writabilityChanged(_ connection: SupervisedConnectionHandler) {}

    func pingReceived(_ payload: ByteBuffer) {
        continuation.yield(.ping(Array(payload.readableBytesView)))
    }

    func pongReceived(_ payload: ByteBuffer, roundTrip: Duration?) {
        continuation.yield(.pong(Array(payload.readableBytesView)))
    }

    func closeFrameReceived(_ payload: ClosePayload) {
        continuation.yield(.close(code: payload.code, reason: payload.reason))
    }

    func violationDetected(_ error: FramingError) {
        continuation.yield(.violation(error))
    }

    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {
        continuation.yield(.ended(outcome))
    }
}

@available(*, unavailable)
extension ClientEventRecorder: Sendable {}
