/// The log metadata keys vigild writes beside a connection's identity (whose keys come from
/// `ConnectionIdentity.fields`): the journal backend makes fields of them (`WS_CONN_ID`, …), so
/// they are spelled once, here.
public enum LogKey {
    public static let connectionID = "ws_conn_id"
    /// The TCP peer of a connection not yet upgraded (an upgraded one's is its identity's).
    public static let peer = "ws_peer"
    /// The trusted balancer a connection not yet upgraded came through (an upgraded one's is its identity's).
    public static let via = "ws_via"
    /// A monitor target's name, on its monitor's lines too.
    public static let target = "ws_target"
    public static let messageID = "message_id"
    public static let closeKind = "ws_close_kind"
    public static let closeCode = "ws_close_code"
    public static let closeCause = "ws_close_cause"
    public static let closeInitiator = "ws_close_initiator"
    public static let closeClean = "ws_close_clean"
    public static let closeReason = "ws_close_reason"
    public static let duration = "ws_duration_ms"
    public static let roundTrip = "ws_rtt_ms"
    public static let appRoundTrip = "ws_app_rtt_ms"
    public static let messagesIn = "ws_messages_in"
    public static let messagesOut = "ws_messages_out"
    public static let compressedIn = "ws_compressed_in"
    public static let compressedOut = "ws_compressed_out"
    public static let partnerKind = "ws_partner_kind"
    public static let partnerCause = "ws_partner_cause"
}
