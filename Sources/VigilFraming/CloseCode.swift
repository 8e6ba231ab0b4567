/// Close status codes as RFC 6455 §7.4 and the IANA registry define them.
///
/// NIO's `WebSocketErrorCode` names only some codes, so validity is decided here.
public enum CloseCode {
    /// Whether a peer may put `code` in a close frame: 1000–1003 and 1007–1014 (registered),
    /// 3000–4999 (libraries and applications). 1004–1006 and 1015 are reserved and must never
    /// appear on the wire; everything else is unassigned.
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }
}
