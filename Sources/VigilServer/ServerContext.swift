import NIOConcurrencyHelpers
import Synchronization
import VigilConfig
import VigilFraming
import VigilHost
import VigilRegistry
import VigilTLS

/// What every connection accepted on the WebSocket listener shares: the connection host
/// (registry, log, clock, timer wheels, channel directory), the settings it was started with,
/// the accept gate, and what a reload replaces (the routes, TLS, the trusted proxies).
final class ServerContext: Sendable {
    let settings: VigilSettings
    let host: ConnectionHost
    /// Which accepted connections may go on to their handshake.
    let gate: AcceptGate
    /// Refused and timed-out handshakes are logged one by one, up to this budget.
    let handshakeLog = RateLimitedLog(perSecond: 20, what: "rejected or timed-out handshakes")
    /// Faults switched on by a test (none otherwise).
    let failpoints: Failpoints
    /// permessage-deflate: how the listener negotiates it (`nil`: compression off) and
    /// compresses.
    let deflate: PerMessageDeflate.Configuration?
    let deflateOptions: DeflateOptions
    /// The routes for new handshakes (a reload replaces them; empty until start).
    private let routeTable = NIOLockedValueBox(RouteTable(routes: []))
    /// The listener's TLS for new handshakes (a reload replaces it); `nil`: plain TCP.
    private let tls = NIOLockedValueBox<ListenerTLS?>(nil)
    /// Who may name the client (a reload replaces it).
    private let trusted: NIOLockedValueBox<[AddressRange]>
    /// Headers naming the client from a peer that is not trusted: one line per peer a minute.
    let untrustedLog = OncePerAddressLog()
    /// Failed TLS handshakes are logged one by one, up to this budget.
    let tlsLog = RateLimitedLog(perSecond: 10, what: "failed TLS handshakes")

    init(settings: VigilSettings, host: ConnectionHost, descriptorBudget: Int?, failpoints: Failpoints = .none) {
        self.settings = settings
        self.host = host
        self.failpoints = failpoints
        self.gate = AcceptGate(settings: settings, descriptorBudget: descriptorBudget)
        self.trusted = NIOLockedValueBox(settings.trustedProxies)
        self.deflate =
            settings.compression
            ? PerMessageDeflate.Configuration(
                maxWindowBits: settings.compressionWindowBits, noContextTakeover: !settings.compressionContextTakeover,
                requestPeerNoContextTakeover: !settings.compressionContextTakeover) : nil
        self.deflateOptions = DeflateOptions(level: settings.compressionLevel, minimumSize: settings.compressionMinSize)
    }

    var registry: ConnectionRegistry { host.registry }

    var routes: RouteTable { routeTable.withLockedValue { $0 } }

    func replaceRoutes(_ new: RouteTable) { routeTable.withLockedValue { $0 = new } }

    func listenerTLS() -> ListenerTLS? { tls.withLockedValue { $0 } }

    func trustedProxies() -> [AddressRange] { trusted.withLockedValue { $0 } }

    func replaceTrustedProxies(_ new: [AddressRange]) { trusted.withLockedValue { $0 = new } }

    func replaceListenerTLS(_ new: ListenerTLS?) { tls.withLockedValue { $0 = new } }
}

/// An accepted connection's count under its client's address (`max_connections_per_ip`): taken
/// at accept, or behind a trusted balancer once the client is known; given back once, when the
/// connection's socket closes.
final class AddressCount: Sendable {
    private let gate: AcceptGate
    private let address = NIOLockedValueBox<String?>(nil)

    init(gate: AcceptGate) {
        self.gate = gate
    }

    /// Whether the connection is counted under an address yet.
    var isCounted: Bool { address.withLockedValue { $0 != nil } }

    /// The gate counted it under `address` already (at accept).
    func counted(_ counted: String) {
        address.withLockedValue { $0 = counted }
    }

    /// Counts it under `counted` now; the refusal when that is over the limit.
    func count(_ counted: String) -> HandshakeRejection? {
        address.withLockedValue { $0 = counted }
        return gate.count(address: counted)
    }

    func release() {
        if let counted = address.withLockedValue({ value in
            defer { value = nil }
            return value
        }) {
            gate.closed(address: counted)
        }
    }
}

/// An accepted connection's `max_connections` slot: taken by its upgrader when the request is
/// admitted, given back once, when the connection's socket closes (the booking
/// `ChannelDirectory.add` runs at its end), whether or not it was upgraded.
final class ConnectionSlot: Sendable {
    private let registry: ConnectionRegistry
    private let held = Atomic<Bool>(false)

    init(registry: ConnectionRegistry) {
        self.registry = registry
    }

    /// Takes a slot if one is free (at most one per connection).
    func take() -> Bool {
        guard !held.load(ordering: .relaxed) else { return true }
        guard registry.reserve() else { return false }
        held.store(true, ordering: .relaxed)
        return true
    }

    func release() {
        if held.exchange(false, ordering: .relaxed) { registry.release() }
    }
}
