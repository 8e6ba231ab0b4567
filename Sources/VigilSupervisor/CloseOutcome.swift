/// How a connection ended, in the five words operators filter on.
public enum CloseKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// Close handshake with status 1000 or no status (1005).
    case normal
    /// Close handshake with status 1001.
    case goingAway = "going_away"
    /// No close handshake: the transport was cut or a deadline fired.
    case abnormal
    /// The remote end closed TCP between frames without sending a close frame.
    case eof
    /// A close frame with any other status.
    case error

    /// The kind a close frame with this status stands for (1005 means "no status").
    public static func forStatus(_ code: UInt16) -> CloseKind {
        switch code {
        case 1000, 1005: .normal
        case 1001: .goingAway
        default: .error
        }
    }
}

/// Why a connection ended.
public enum CloseCause: String, Sendable, Hashable, CaseIterable, Codable {
    /// The remote end sent a close frame first.
    case remoteClose = "peer_close"
    case eof
    case truncatedFrame = "truncated_frame"
    case reset
    case pongTimeout = "pong_timeout"
    case readDeadline = "read_deadline"
    case protocolError = "protocol_error"
    case invalidUTF8 = "invalid_utf8"
    case messageTooBig = "message_too_big"
    case slowConsumer = "slow_consumer"
    /// This end asked to close: vigild shutting down or draining a proxy pool's member, or a
    /// client program's own `close()`.
    case shutdown
    /// This connection was one leg of a relayed pair, and the other leg ended first.
    case partnerClosed = "partner_closed"
    /// A monitor's application round trip failed: the remote end answered pings but not three
    /// requests in a row within their time.
    case replyTimeout = "reply_timeout"
    /// The remote end answered protocol pings but not the application-level ping in time: a
    /// browser page frozen, navigated away from, or stuck in JavaScript.
    case appPongTimeout = "app_pong_timeout"
}

/// How the other leg of a relayed pair ended, when that is why this leg was closed.
public struct PartnerEnding: Sendable, Hashable {
    public var kind: CloseKind
    public var cause: CloseCause

    public init(kind: CloseKind, cause: CloseCause) {
        self.kind = kind
        self.cause = cause
    }
}

/// Which end started the end of the connection. The words on the wire stay true whichever way
/// the connection was made: `peer` is the remote end of this connection, `vigild` this end.
public enum CloseInitiator: String, Sendable, Hashable, CaseIterable, Codable {
    case remote = "peer"
    case local = "vigild"
}

/// WebSocket close status codes the supervisor itself needs to name.
public enum CloseStatus {
    public static let normal: UInt16 = 1000
    public static let goingAway: UInt16 = 1001
    public static let protocolError: UInt16 = 1002
    public static let policyViolation: UInt16 = 1008
    /// Never sent on the wire: "the close frame carried no status".
    public static let noStatusReceived: UInt16 = 1005
    /// Never sent on the wire: "the connection ended without a close handshake".
    public static let abnormalClosure: UInt16 = 1006
    public static let invalidPayload: UInt16 = 1007
    public static let messageTooBig: UInt16 = 1009
    /// vigil's own (RFC 6455 §7.4.2 leaves 4000–4999 to applications): the application-level
    /// pong did not come in time.
    public static let appPongTimeout: UInt16 = 4000
}

/// The classification of one connection's end: exactly one per supervised connection.
public struct CloseOutcome: Sendable, Hashable {
    public var kind: CloseKind
    /// The close status: what the close frame carried, 1005 for a frame without one,
    /// 1006 when there was no close handshake.
    public var code: UInt16
    public var cause: CloseCause
    public var initiator: CloseInitiator
    /// Whether the close handshake completed (both ends sent a close frame).
    public var clean: Bool
    /// The close frame's reason text (the remote end's, or the one this end sent); may be empty.
    public var reason: String
    /// With `cause == .partnerClosed`: how the partner leg ended.
    public var partner: PartnerEnding?

    public init(
        kind: CloseKind, code: UInt16, cause: CloseCause, initiator: CloseInitiator, clean: Bool, reason: String,
        partner: PartnerEnding? = nil
    ) {
        self.kind = kind
        self.code = code
        self.cause = cause
        self.initiator = initiator
        self.clean = clean
        self.reason = reason
        self.partner = partner
    }

    /// The remote end sent a (valid) close frame first.
    static func remoteClosed(code: UInt16?, reason: String) -> CloseOutcome {
        let status = code ?? CloseStatus.noStatusReceived
        return CloseOutcome(
            kind: .forStatus(status), code: status, cause: .remoteClose, initiator: .remote, clean: true, reason: reason
        )
    }

    /// The connection ended without a close handshake.
    static func abnormal(_ cause: CloseCause, initiator: CloseInitiator) -> CloseOutcome {
        CloseOutcome(
            kind: cause == .eof ? .eof : .abnormal, code: CloseStatus.abnormalClosure, cause: cause,
            initiator: initiator, clean: false, reason: "")
    }
}
