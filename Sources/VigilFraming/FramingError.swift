import VigilSupervisor

/// A violation of RFC 6455 (or of the size limits) by the peer, with the close status it earns.
public struct FramingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `.protocolError` (broken framing rules), `.invalidUTF8` (a text message or close reason
    /// that is not UTF-8) or `.messageTooBig` (a frame or message over the limit).
    public var cause: CloseCause
    /// What exactly was wrong, naming the offending value. Sent as the close reason, so short.
    public var detail: String
    /// Whether the error is in the peer's close frame: the peer has already started closing.
    public var inCloseFrame: Bool

    public init(_ cause: CloseCause, _ detail: String, inCloseFrame: Bool = false) {
        self.cause = cause
        self.detail = detail
        self.inCloseFrame = inCloseFrame
    }

    /// What the supervisor is told: every supervised connection and the fuzz targets hand the
    /// framing core's refusals over this way.
    public var violation: ProtocolViolation {
        ProtocolViolation(cause: cause, detail: detail, inCloseFrame: inCloseFrame)
    }

    /// The close status this error is answered with (`ProtocolViolation`'s one table).
    public var closeCode: UInt16 { violation.status }

    public var description: String { "\(closeCode) \(detail)" }
}
