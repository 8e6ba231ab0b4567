/// Why a client's TLS handshake on the WebSocket listener failed: the `reason` label of
/// `vigil_tls_handshakes_failed_total`, and the table in docs/tls.md (a test keeps the two the
/// same). A small fixed set, so the series stay few whatever clients send; the log line of each
/// failure carries BoringSSL's own words.
public enum TLSHandshakeFailureReason: String, Sendable, Hashable, CaseIterable {
    /// The first byte was not a TLS handshake record: plain HTTP (answered 400) or another protocol.
    case plainHTTP = "plain_http"
    /// The client's newest TLS version is older than `tls_min_version`.
    case protocolVersion = "protocol_version"
    /// No cipher suite (or signature algorithm, or group) both sides support.
    case noSharedCipher = "no_shared_cipher"
    /// The client refused vigild's certificate (an alert: unknown CA, bad or expired certificate).
    case certificateRejected = "certificate_rejected"
    /// The client went away before the handshake finished.
    case closed
    /// `handshake_timeout` ran out during the TLS handshake.
    case timeout
    /// Anything else BoringSSL refused: a malformed or unexpected message.
    case protocolError = "protocol_error"
}
