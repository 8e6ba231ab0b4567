/// Why a WebSocket handshake did not become a connection: the `reason` label of
/// `vigil_handshakes_rejected_total`, and the table in docs/refused-handshakes.md (a test
/// keeps the two the same).
public enum HandshakeRejectionReason: String, Sendable, Hashable, CaseIterable {
    // The request
    case notFound = "not_found"
    case notWebSocket = "not_websocket"
    case badMethod = "bad_method"
    case missingConnectionUpgrade = "missing_connection_upgrade"
    case unsupportedVersion = "unsupported_version"
    case invalidKey = "invalid_key"
    case badClientName = "bad_client_name"
    case origin
    case badRequest = "bad_request"
    case headersTooLarge = "headers_too_large"
    /// The TLS handshake failed (`vigil_tls_handshakes_failed_total` says why).
    case tls
    /// `proxy_protocol` is on and the connection did not begin with a PROXY header it accepts.
    case proxyProtocol = "proxy_protocol"
    // vigild's limits
    case capacity
    case pendingHandshakes = "pending_handshakes"
    case perIPLimit = "per_ip_limit"
    case descriptors
    // Proxy mode's upstream
    case upstreamRefused = "upstream_refused"
    case upstreamTimeout = "upstream_timeout"
    case upstreamUnreachable = "upstream_unreachable"
    // How the attempt ended without an answer
    case handshakeTimeout = "handshake_timeout"
    case closedDuringHandshake = "closed_during_handshake"
    case shutdown
    case setupFailed = "setup_failed"
}
