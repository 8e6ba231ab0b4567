/// A heartbeat in the application's own messages: this end sends `ping` as a text message every
/// `interval` and expects the text message `pong` within `timeout`.
///
/// Protocol pings cannot see a browser page that is frozen (kept in the back/forward cache) or
/// stuck in JavaScript: the browser's network process answers them on the page's behalf. Only
/// the page's own code can answer this one.
public struct AppHeartbeat: Sendable, Hashable {
    public var interval: Duration
    public var timeout: Duration
    /// Sent as a text message.
    public var ping: String
    /// The text message that answers it, compared byte for byte. It is taken out of the message
    /// stream: a sink (echo, command, relay) never sees it.
    public var pong: String

    public init(interval: Duration, timeout: Duration, ping: String, pong: String) {
        self.interval = interval
        self.timeout = timeout
        self.ping = ping
        self.pong = pong
    }

    /// Whether `bytes` (a whole text message's payload) is the reply.
    public func isPong(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.elementsEqual(pong.utf8)
    }
}
