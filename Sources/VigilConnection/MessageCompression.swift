import VigilFraming

/// What a supervised connection does about permessage-deflate (RFC 7692), once its handshake
/// has settled it.
public enum MessageCompression {
    /// Not agreed: RSV1 is a protocol error, as before the extension.
    case off
    /// Agreed between two other ends, and relayed: a proxy's legs pass compressed messages on
    /// as they came, never inflating them (pings, pongs and closes are never compressed, so
    /// supervision sees them all). What only inflating could check (a compressed text's UTF-8,
    /// its inflated size) is the endpoints' business. `pongReader`, on a client leg whose client
    /// resets its context (its agreement says `client_no_context_takeover`, so taking a pong out
    /// of the stream leaves the backend's decompressor in step), inflates a compressed text
    /// message no longer than the pong allows, while an app ping awaits its pong, to recognise it.
    case relayed(pongReader: MessageDeflate?)
    /// This end is an endpoint of the extension: it inflates what it receives and deflates what
    /// it sends.
    case endpoint(MessageDeflate)

    var isAgreed: Bool {
        if case .off = self { return false }
        return true
    }

    var deflate: MessageDeflate? {
        if case .endpoint(let deflate) = self { return deflate }
        return nil
    }

    var pongReader: MessageDeflate? {
        if case .relayed(let reader) = self { return reader }
        return nil
    }

    /// Whether the application heartbeat can run here: everywhere but on a relayed leg without
    /// a pong reader, whose client may keep its compression context (its agreement does not say
    /// `client_no_context_takeover`), so that a compressed pong could neither be read nor taken
    /// out of the stream. That is a pair opened while the heartbeat was off, before a reload
    /// turned it on: its client would be closed for pongs it sends.
    var allowsAppHeartbeat: Bool {
        if case .relayed(nil) = self { return false }
        return true
    }
}
