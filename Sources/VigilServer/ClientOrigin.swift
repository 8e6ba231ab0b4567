import Logging
import NIOCore
import VigilConfig
import VigilHost
import VigilRealClient

/// Who an accepted connection's client is. At first the TCP peer; then, from a peer in
/// `trusted_proxies`, what it said: the PROXY header's source, and, from a trusted hop, the
/// `Forwarded` / `X-Forwarded-For` chain's first untrusted address. Everything that names the
/// client (records, logs, per-IP limits, the chain sent upstream) reads it here. Confined to the
/// connection's event loop.
final class ClientOrigin {
    /// The TCP peer: `192.0.2.7:51234`.
    let tcpPeer: String
    /// The TCP peer's address as limits count it (IPv4-mapped IPv6 as IPv4).
    let tcpAddress: String?
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
    /// A PROXY header without addresses (v2 LOCAL, v1 UNKNOWN): the balancer checking health.
    private(set) var healthCheck = false
    /// The connection did not begin with an acceptable PROXY header (counted and logged there).
    var refusedProxyHeader = false

    init(remote: SocketAddress?) {
        tcpPeer = remote?.endpointDescription ?? "unknown"
        tcpAddress = AcceptGate.key(for: remote)
        peer = tcpPeer
        address = tcpAddress
        hop = tcpAddress
    }

    /// `base` with this client's `ws_peer` (and `via`), for the lines of its handshake.
    func logger(_ base: Logger) -> Logger {
        var logger = base
        logger[metadataKey: LogKey.peer] = "\(peer)"
        if let via { logger[metadataKey: "via"] = "\(via)" }
        return logger
    }

    /// Whether `address` is one of `trusted`.
    static func isTrusted(_ address: String?, _ trusted: [AddressRange]) -> Bool {
        guard let address else { return false }
        return trusted.contains { $0.contains(address) }
    }

    /// The PROXY header arrived. Its source is believed from a trusted peer only: `false` when
    /// the peer is not trusted (the header is then ignored).
    func received(_ header: ProxyProtocolHeader, trusted: [AddressRange]) -> Bool {
        guard let source = header.source else {
            healthCheck = true
            return true
        }
        guard Self.isTrusted(tcpAddress, trusted) else { return false }
        peer = source.description
        address = source.address
        hop = source.address
        via = tcpPeer
        return true
    }

    /// The request head's forwarded headers, read when the hop vigild received it from is
    /// trusted. `false` when the hop is not trusted and the request carries such headers (they
    /// are ignored).
    func forwarded(by chain: ForwardedChain, trusted: [AddressRange]) -> Bool {
        guard !chain.hops.isEmpty else { return true }
        guard Self.isTrusted(hop, trusted) else { return false }
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
