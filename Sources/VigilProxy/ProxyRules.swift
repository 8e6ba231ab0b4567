import VigilClient
import VigilConfig
import VigilHost
import VigilSupervisor

/// What proxy mode needs to open each upstream leg, from the settings of the moment (a reload
/// replaces them; live pairs keep the rules they were opened with).
public struct ProxyRules: Sendable {
    public let upstream: WebSocketURL
    public let path: UpstreamPath
    public let connectTimeout: Duration
    /// For a `wss://` upstream: the system's trust store plus `upstream_ca_file`.
    public let tls: WebSocketDialer.TLS?
    public let upstreamPolicy: SupervisionPolicy
    /// The status a client hears when its upstream leg fails.
    public let failureCode: UInt16
    /// Pass the client's permessage-deflate offers upstream and relay compressed messages
    /// (`compression`); off, the offers go nowhere and no extension is agreed.
    public let compression: Bool
    /// The client legs run the application heartbeat: their agreement tells the client to reset
    /// its compressor per message, so that vigild can read a compressed pong without disturbing
    /// the backend's context.
    public let appHeartbeat: Bool

    /// `nil` unless in proxy mode. Throws when the CA file cannot be used, naming it.
    public static func make(_ settings: VigilSettings) throws -> ProxyRules? {
        guard settings.mode == .proxy, let upstream = settings.upstream else { return nil }
        let tls: WebSocketDialer.TLS?
        do {
            tls =
                upstream.secure || settings.upstreamCAFile != nil
                ? try WebSocketDialer.TLS(caFile: settings.upstreamCAFile) : nil
        } catch {
            throw StartupError(
                message: "cannot use upstream_ca_file \(settings.upstreamCAFile ?? "none") for \(upstream): \(error)")
        }
        return ProxyRules(
            upstream: upstream, path: settings.upstreamPath, connectTimeout: settings.upstreamConnectTimeout, tls: tls,
            upstreamPolicy: settings.upstreamSupervisionPolicy, failureCode: settings.upstreamFailureCode.code,
            compression: settings.compression, appHeartbeat: settings.appPingInterval > .zero)
    }
}
