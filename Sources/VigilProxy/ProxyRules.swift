import VigilClient
import VigilConfig
import VigilHost
import VigilSupervisor

/// What a proxy route needs to open each upstream leg, from the settings of the moment (a
/// reload replaces them; live pairs keep the rules they were opened with).
public struct ProxyRules: Sendable {
    /// The route's name and path prefix, and how its upstream request target is built.
    public let route: String
    public let routePath: String
    public let target: UpstreamTarget
    /// Its upstreams, health and balance.
    public let pool: UpstreamPool
    public let connectTimeout: Duration
    /// One member's share of `connectTimeout` while another could still be tried.
    public let tryTimeout: Duration
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

    /// The rules of `route` (a proxy route) with its own settings (`settings`: the top-level
    /// ones with the route's over them). Throws when the CA file cannot be used, naming it.
    public static func make(_ route: RouteEntry, settings: VigilSettings, pool: UpstreamPool) throws -> ProxyRules {
        let tls: WebSocketDialer.TLS?
        do {
            tls =
                route.pool.contains(where: \.url.secure) || settings.upstreamCAFile != nil
                ? try WebSocketDialer.TLS(caFile: settings.upstreamCAFile) : nil
        } catch {
            throw StartupError(
                message:
                    "cannot use upstream_ca_file \(settings.upstreamCAFile ?? "none") for route \(route.name): \(error)"
            )
        }
        return ProxyRules(
            route: route.name, routePath: route.path, target: route.target, pool: pool,
            connectTimeout: settings.upstreamConnectTimeout, tryTimeout: settings.upstreamTryTimeout, tls: tls,
            upstreamPolicy: settings.upstreamSupervisionPolicy, failureCode: settings.upstreamFailureCode.code,
            compression: settings.compression, appHeartbeat: settings.appPingInterval > .zero)
    }
}
