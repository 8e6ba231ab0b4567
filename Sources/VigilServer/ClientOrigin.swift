import Logging
import NIOCore
import VigilConfig
import VigilHost
import VigilRealClient

/// Who an accepted connection's client is. At first the TCP peer; then, from a peer in
/// `trusted_proxies`, what it said: the PROXY header's source, or, on a request from a trusted
/// hop, the forwarded header's first untrusted address. One source, not both: a client a PROXY
/// header named wrote any forwarded header itself. Everything that names the client (records,
/// logs, per-IP limits, the chain sent upstream) reads it here. Confined to the connection's
/// event loop.
final class ClientOrigin {
    /// The TCP peer: `192.0.2.7:51234`.
    let tcpPeer: String
    /// The TCP peer's address as limits count it (IPv4-mapped IPv6 as IPv4).
    let tcpAddress: String?
    /// `trusted_proxies` as the connection was accepted (a reload applies to the next ones).
    let trusted: [AddressRange]
    /// The client as records name it: `address:port`, or the address alone when a
    /// forwarded header gave it (headers carry no port worth believing).
    private(set) var peer: String
    /// The client's address: what `max_connections_per_ip` counts.
    private(set) var address: String?
    /// The address vigild received the connection from, as far as it believes: the PROXY
    /// header's source, or the TCP peer. What it appends to the `X-Forwarded-For` it sends on.
    private(set) var hop: String?
    /// The balancer, when the client is not the TCP peer: its `address:port`.
    private(set) var via: String?
    /// The scheme a trusted hop said the client used (`https`), if any.
    private(set) var scheme: String?
    /// A trusted balancer's health check: a header without a client (v2 LOCAL, v1 UNKNOWN) or
    /// naming the balancer's own connection, or any header from a peer already gone.
    private(set) var healthCheck = false
    /// The peer was gone before vigild could read its address.
    private let peerGone: Bool
    /// Whether the client can still change (a trusted hop's forwarded headers are to come).
    private(set) var settled: Bool
    /// The connection did not begin with an acceptable PROXY header (counted and logged there).
    var refusedProxyHeader = false
    /// Counted under its client's address once that was known and found over
    /// `max_connections_per_ip`: the refusal its request gets.
    var refusal: HandshakeRejection?

    /// What a PROXY header did.
    enum HeaderResult: String {
        /// From a trusted peer: believed (its client, if it names one).
        case proxy
        /// A health check: from a trusted peer, naming no client or itself; or from a peer gone.
        case local
        /// From a peer not in `trusted_proxies`: ignored.
        case untrusted
    }

    init(remote: SocketAddress?, trusted: [AddressRange], proxyProtocol: Bool) {
        tcpPeer = remote?.endpointDescription ?? "unknown"
        tcpAddress = AcceptGate.key(for: remote)
        peerGone = remote == nil
        self.trusted = trusted
        peer = tcpPeer
        address = tcpAddress
        hop = tcpAddress
        settled = !proxyProtocol && !Self.isTrusted(tcpAddress, trusted)
    }

    /// `base` with this client's `ws_peer` (and `ws_via`), for the lines of its handshake.
    func logger(_ base: Logger) -> Logger {
        var logger = base
        logger[metadataKey: LogKey.peer] = "\(peer)"
        if let via { logger[metadataKey: LogKey.via] = "\(via)" }
        return logger
    }

    /// Whether `address` is one of `trusted`.
    static func isTrusted(_ address: String?, _ trusted: [AddressRange]) -> Bool {
        guard let address else { return false }
        return trusted.contains { $0.contains(address) }
    }

    /// The PROXY header arrived: believed from a trusted peer only.
    func received(_ header: ProxyProtocolHeader) -> HeaderResult {
        // A balancer's health check names no client (v2 LOCAL, v1 UNKNOWN) or, as HAProxy's v1
        // checks do (TCP4 with the check's own addresses), the balancer's own connection: no
        // client's connection has the balancer's address and port. A check is a header and a
        // reset at once, so its peer may be gone before vigild could ask its address
        // (getpeername fails on a socket reset before its accept was handled): whoever sent
        // that cannot be checked against trusted_proxies, so it is neither believed nor called
        // untrusted, but taken as the check it most likely is. A check's hang-up is no refusal.
        let namesItself = header.source.map { $0.description == tcpPeer } ?? false
        if peerGone || ((header.isLocal || namesItself) && Self.isTrusted(tcpAddress, trusted)) {
            healthCheck = true
            return .local
        }
        guard Self.isTrusted(tcpAddress, trusted) else {
            settled = true  // the TCP peer it stays, whatever headers follow
            return .untrusted
        }
        if let source = header.source {
            peer = source.description
            address = source.address
            hop = source.address
            via = tcpPeer
            settled = true
        }
        return .proxy
    }

    /// The request head's forwarded headers, read when they can still name the client and the
    /// hop vigild received it from is trusted. `false` when they came from a hop that is not
    /// trusted (they are ignored).
    func forwarded(by chain: ForwardedChain) -> Bool {
        guard !chain.hops.isEmpty else { return true }
        guard Self.isTrusted(hop, trusted) else { return false }
        guard !settled else { return true }  // a PROXY header named the client: its headers are its own
        settled = true
        guard let client = chain.client(trusting: trusted), let clientAddress = client.address else { return true }
        scheme = client.scheme
        if clientAddress != address {
            via = via ?? tcpPeer
            address = clientAddress
            peer = clientAddress
        }
        return true
    }
}

@available(*, unavailable)
extension ClientOrigin: Sendable {}
