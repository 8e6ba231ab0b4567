import NIOConcurrencyHelpers
import NIOCore
import VigilConfig

/// Every WebSocket channel vigild has open — accepted (upgraded or not), in proxy mode the
/// upstream legs it dialed, and the monitor targets' connections — so shutdown and reload can
/// reach them. Touched on open and on close only, never per message.
public final class ChannelDirectory: Sendable {
    /// Which timers a channel is supervised by.
    public enum Kind: Sendable {
        /// Accepted, its route not known yet (no handshake yet).
        case accepted
        /// Accepted and upgraded on `route`, supervised by that route's heartbeat.
        case client(route: String)
        /// A proxied pair's upstream leg to `member` (at `url`: a default name is a position
        /// in the list, which a reload can give another member) of `route`'s pool.
        case upstream(route: String, member: String, url: WebSocketURL)
        /// A monitor target's connection, supervised by that target's heartbeat.
        case target(MonitorTarget)
    }

    private let channels = NIOLockedValueBox<[ObjectIdentifier: (channel: any Channel, kind: Kind)]>([:])

    public init() {}

    /// Lists `channel` until it closes. `whenClosed` is everything else its owner books at the
    /// channel's end (a slot, a per-address count), run then, once, on the channel's loop: a
    /// connection's end is booked in this one place.
    public func add(_ channel: any Channel, kind: Kind = .accepted, whenClosed: (@Sendable () -> Void)? = nil) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = (channel, kind) }
        channel.closeFuture.whenComplete { _ in
            _ = self.channels.withLockedValue { $0.removeValue(forKey: id) }
            whenClosed?()
        }
    }

    /// What `channel` now is (an accepted connection upgraded on its route).
    public func reclassify(_ channel: any Channel, as kind: Kind) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { all in
            if all[id] != nil { all[id]!.kind = kind }
        }
    }

    /// The channels whose kind `include` picks, with their kinds.
    public func channels(where include: (Kind) -> Bool) -> [(channel: any Channel, kind: Kind)] {
        channels.withLockedValue { $0.values.filter { include($0.kind) } }
    }

    public var count: Int { channels.withLockedValue { $0.count } }

    public var all: [any Channel] { channels.withLockedValue { $0.values.map(\.channel) } }

    /// Fires `event(kind)` into every channel's pipeline, on its own event loop; a channel for
    /// which it returns `nil` is skipped.
    public func broadcast(_ event: (Kind) -> (any Sendable)?) {
        for (channel, kind) in channels.withLockedValue({ Array($0.values) }) {
            guard let value = event(kind) else { continue }
            channel.pipeline.fireUserInboundEventTriggered(value)
        }
    }

    /// Fires `event` into every channel's pipeline, on its own event loop.
    public func broadcast(_ event: some Sendable) {
        broadcast { _ in event }
    }
}
