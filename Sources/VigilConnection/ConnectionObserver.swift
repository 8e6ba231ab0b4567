import NIOCore
import VigilFraming
import VigilSupervisor

/// Hears everything a supervised connection does, for whoever keeps its books: vigild's
/// registry and log, a client program's event stream, a load generator's counters. The shell
/// knows none of them.
///
/// Called on the connection's event loop only; every method has an empty default.
public protocol ConnectionObserver: AnyObject {
    /// A complete frame of any kind arrived.
    func frameReceived(at now: MonotonicInstant)
    /// A whole message arrived (before the sink sees it).
    func messageReceived(_ message: WebSocketMessage)
    /// A message went out (`bytes` of payload).
    func messageSent(bytes: Int)
    /// The message just received came compressed (permessage-deflate), relayed or inflated.
    func compressedMessageReceived()
    /// The message just sent went out compressed.
    func compressedMessageSent()
    func pingReceived(_ payload: ByteBuffer)
    func pingSent()
    /// A pong arrived; `roundTrip` when it answered this end's outstanding ping.
    func pongReceived(_ payload: ByteBuffer, roundTrip: Duration?)
    /// The application-level ping went out.
    func appPingSent()
    /// The application-level pong answered it after `roundTrip` (a late or unsolicited one is
    /// dropped without a call).
    func appPongReceived(roundTrip: Duration)
    /// The remote end's close frame arrived.
    func closeFrameReceived(_ payload: ClosePayload)
    /// The remote end broke the protocol; the connection is being failed with `error.closeCode`.
    func violationDetected(_ error: FramingError)
    /// Reading or writing failed (what the record will call a reset).
    func transportFailed(_ error: any Error)
    /// The connection's one close record: called exactly once.
    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant)
}

extension ConnectionObserver {
    public func frameReceived(at now: MonotonicInstant) {}
    public func messageReceived(_ message: WebSocketMessage) {}
    public func messageSent(bytes: Int) {}
    public func compressedMessageReceived() {}
    public func compressedMessageSent() {}
    public func pingReceived(_ payload: ByteBuffer) {}
    public func pingSent() {}
    public func pongReceived(_ payload: ByteBuffer, roundTrip: Duration?) {}
    public func appPingSent() {}
    public func appPongReceived(roundTrip: Duration) {}
    public func closeFrameReceived(_ payload: ClosePayload) {}
    public func violationDetected(_ error: FramingError) {}
    public func transportFailed(_ error: any Error) {}
    public func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {}
}
