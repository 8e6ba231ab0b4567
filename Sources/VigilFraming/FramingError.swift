/// A violation of RFC 6455 (or of the size limits) by the peer, with the close status it earns.
public struct FramingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// 1002: broken framing rules.
        case protocolError
        /// 1007: a text message or close reason that is not UTF-8.
        case invalidUTF8
        /// 1009: a frame or message over the limit.
        case messageTooBig
    }

    public var kind: Kind
    /// What exactly was wrong, naming the offending value. Sent as the close reason, so short.
    public var detail: String
    /// Whether the error is in the peer's close frame: the peer has already started closing.
    public var inCloseFrame: Bool

    public init(_ kind: Kind, _ detail: String, inCloseFrame: Bool = false) {
        self.kind = kind
        self.detail = detail
        self.inCloseFrame = inCloseFrame
    }

    /// The close status this error is answered with.
    public var closeCode: UInt16 {
        switch kind {
        case .protocolError: 1002
        case .invalidUTF8: 1007
        case .messageTooBig: 1009
        }
    }

    public var description: String { "\(closeCode) \(detail)" }
}
