import NIOCore
import VigilConnection
import VigilFraming
import VigilRegistry
import VigilSupervisor

/// One leg's half of a proxied pair: what arrives on this leg goes out on the partner's.
///
/// - Messages both ways, text as text and binary as binary.
/// - Pings the remote end sends are passed on (the leg does not answer them itself), and pongs
///   that are not answers to vigild's own pings come back the same way: a client's heartbeat
///   measures the backend, not vigild. vigild's own pings on each leg are its own.
/// - Backpressure: while this leg's output is not draining, the partner is not read.
/// - Endings: a close frame is passed on with its code and reason (1005 as an empty close
///   frame), each leg completing its own handshake; a leg that ends any other way closes the
///   partner with a real close frame — `upstream_failure_code` (1014) to the client when the
///   upstream failed, 1001 to the upstream when the client did — recorded as `partner_closed`.
///
/// Both halves live on one event loop (the upstream leg is dialed on the client's). Public so
/// that the relay fuzz target drives the real thing.
public final class RelaySink: MessageSink {
    public let leg: ConnectionLeg
    /// The other half; set once both exist.
    private(set) weak var partnerSink: RelaySink?
    /// This leg's connection, once its shell is in place.
    public private(set) weak var connection: SupervisedConnectionHandler?
    /// The status the partner is closed with when this leg fails without a close handshake.
    private let failureCodeForPartner: UInt16
    /// What arrived before the partner leg existed (frames behind the upstream's 101).
    private var pending: [Pending] = []
    /// This leg's ending, if it came before the partner existed.
    private var earlyEnding: CloseOutcome?

    private enum Pending {
        case message(WebSocketMessage)
        case ping(ByteBuffer)
        case pong(ByteBuffer)
    }

    private init(leg: ConnectionLeg, failureCodeForPartner: UInt16) {
        self.leg = leg
        self.failureCodeForPartner = failureCodeForPartner
    }

    /// The two halves of one proxied pair, each the other's partner. When the upstream leg fails
    /// the client is closed with `upstreamFailureCode` (`upstream_failure_code`); when the client
    /// leg fails the upstream is closed with 1001.
    public static func pair(upstreamFailureCode: UInt16) -> (client: RelaySink, upstream: RelaySink) {
        let client = RelaySink(leg: .client, failureCodeForPartner: CloseStatus.goingAway)
        let upstream = RelaySink(leg: .upstream, failureCodeForPartner: upstreamFailureCode)
        client.partnerSink = upstream
        upstream.partnerSink = client
        return (client, upstream)
    }

    private var partner: SupervisedConnectionHandler? { partnerSink?.connection }

    // MARK: - MessageSink

    public func connectionOpened(_ connection: SupervisedConnectionHandler) {
        self.connection = connection
        guard let partnerSink, partnerSink.connection != nil else {
            connection.pauseReading()  // nowhere to send anything yet
            return
        }
        partnerSink.partnerArrived()
        partnerArrived()
    }

    public func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        guard let partner else { return pending.append(.message(message)) }
        partner.send(message)
    }

    public func pingReceived(_ payload: ByteBuffer, from connection: SupervisedConnectionHandler) {
        guard let partner else { return pending.append(.ping(payload)) }
        partner.relayPing(payload)
    }

    public func pongReceived(_ payload: ByteBuffer, from connection: SupervisedConnectionHandler) {
        guard let partner else { return pending.append(.pong(payload)) }
        partner.relayPong(payload)
    }

    public func writabilityChanged(_ connection: SupervisedConnectionHandler) {
        guard let partner else { return }
        if connection.isWritable {
            partner.resumeReading()
        } else {
            partner.pauseReading()
        }
    }

    public func connectionEnded(_ outcome: CloseOutcome, _ connection: SupervisedConnectionHandler) {
        guard let close = closeForPartner(after: outcome) else { return }
        if let partner {
            partner.close(close)
        } else {
            earlyEnding = outcome
        }
    }

    // MARK: - Pairing

    /// The partner's connection is in place: deliver what waited, take on an early ending, and
    /// read again (unless the partner's output is already backed up).
    private func partnerArrived() {
        guard let connection, let partner else { return }
        if let ending = earlyEnding, let close = closeForPartner(after: ending) {
            earlyEnding = nil
            partner.close(close)
            return
        }
        for item in pending {
            switch item {
            case .message(let message): partner.send(message)
            case .ping(let payload): partner.relayPing(payload)
            case .pong(let payload): partner.relayPong(payload)
            }
        }
        pending = []
        if partner.isWritable { connection.resumeReading() }
    }

    /// The close the partner gets when this leg ended with `outcome`; `nil` when the partner
    /// is already being closed for its own reasons.
    func closeForPartner(after outcome: CloseOutcome) -> LocalClose? {
        let ending = PartnerEnding(kind: outcome.kind, cause: outcome.cause)
        switch outcome.cause {
        case .partnerClosed:
            return nil  // the partner started it
        case .shutdown:
            // A pair stops together, even when a drain window spreads the stop, and says why
            // (vigild stopping, or the pool member drained).
            return LocalClose(code: CloseStatus.goingAway, reason: outcome.reason, cause: .shutdown)
        case .remoteClose:
            // 1005 ("no status") is never put on the wire: an empty close frame says the same.
            let code = outcome.code == CloseStatus.noStatusReceived ? nil : outcome.code
            return LocalClose(code: code, reason: outcome.reason, cause: .partnerClosed, partner: ending)
        default:
            let reason = "\(leg.rawValue) leg ended: \(outcome.cause.rawValue)"
            return LocalClose(code: failureCodeForPartner, reason: reason, cause: .partnerClosed, partner: ending)
        }
    }
}

@available(*, unavailable)
extension RelaySink: Sendable {}
