/// Which end of a WebSocket connection this side is. RFC 6455 §5.1: clients mask every frame
/// they send, servers never do, and each side fails the connection when the other breaks that rule.
public enum WebSocketRole: Sendable, Hashable {
    case server
    case client
}
