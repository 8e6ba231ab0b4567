import VigilSupervisor

/// Every setting vigild runs with, fully parsed and validated.
///
/// Built by `SettingsLoader` from flags, environment, config file and defaults; the defaults live
/// in `SettingCatalog`, once, as the text an operator would write.
public struct VigilSettings: Sendable, Hashable {
    // Each field's real default is the text in `SettingCatalog`; the values here are blanks the
    // loader always overwrites.
    /// `nil`: no WebSocket listener (`listen: none`, a pure monitor).
    public var listen: ListenAddress?
    public var path = ""
    public var mode = ServerMode.echo
    public var statusListen = ListenAddress(host: "", port: 0)
    public var statusSocket: String?
    public var statusSocketMode: UInt32 = 0
    public var statusSocketOwner: String?
    public var statusSocketGroup: String?
    public var statusTokenFile: String?
    public var statusInsecure = false
    /// Names besides IP addresses and `localhost`, lowercased.
    public var statusHosts: [String] = []
    public var statusMaxConnections = 0
    public var statusRequestTimeout = Duration.zero
    public var statusIdleTimeout = Duration.zero
    public var pingInterval = Duration.zero
    public var pongTimeout = Duration.zero
    public var readDeadline = Duration.zero
    /// `.zero`: no application-level heartbeat.
    public var appPingInterval = Duration.zero
    public var appPongTimeout = Duration.zero
    public var appPingMessage = ""
    public var appPongMessage = ""
    public var handshakeTimeout = Duration.zero
    public var closeTimeout = Duration.zero
    public var writeTimeout = Duration.zero
    public var maxBacklog = 0
    public var maxFrame = 0
    public var maxMessage = 0
    public var maxConnections = 0
    public var closeHistory = 0
    public var maxPendingHandshakes = 0
    /// 0: no limit.
    public var maxConnectionsPerIP = 0
    /// `nil`: same origin only.
    public var allowedOrigins: [OriginPattern]?
    public var requireOrigin = false
    /// The proxies and balancers in front of vigild whose word on the client is believed.
    public var trustedProxies: [AddressRange] = []
    public var proxyProtocol = ProxyProtocolSetting.off
    public var forwardedHeader = ForwardedHeaderSetting.xForwardedFor
    /// TLS on the WebSocket listener (docs/tls.md): the default certificate and key, `nil` for
    /// none; with neither these nor `tlsCertificates`, the listener speaks plain TCP.
    public var tlsCertFile: String?
    public var tlsKeyFile: String?
    public var tlsMinVersion = TLSMinimumVersion.tls12
    /// The config file's `tls_certificates`, chosen by SNI (not a catalog setting: a list of mappings).
    public var tlsCertificates: [TLSCertificateEntry] = []
    /// The config file's `routes` (not a catalog setting: a list of mappings); empty: the single
    /// route `path`, `mode` and `upstream` describe.
    public var routes: [RouteEntry] = []
    public var upstream: WebSocketURL?
    public var upstreamPath = UpstreamPath.append
    public var upstreamConnectTimeout = Duration.zero
    public var upstreamTryTimeout = Duration.zero
    public var upstreamCAFile: String?
    /// `nil`: the same as `pingInterval` / `pongTimeout`.
    public var upstreamPingInterval: Duration?
    public var upstreamPongTimeout: Duration?
    public var upstreamFailureCode = UpstreamFailureCode.badGateway
    /// permessage-deflate on the listener (docs/compression.md).
    public var compression = true
    public var compressionLevel = 1
    public var compressionWindowBits = 15
    public var compressionMinSize = 128
    public var compressionContextTakeover = false
    public var reconnectMax = Duration.zero
    public var reconnectResetAfter = Duration.zero
    /// The config file's `targets`, in its order (not a catalog setting: a list of mappings).
    public var targets: [MonitorTarget] = []
    public var drainWindow = Duration.zero
    public var log = LogTarget.auto
    public var logFormat = LogFormat.text
    public var logLevel = LogLevel.info

    /// The embedded defaults.
    public static var defaults: VigilSettings {
        // The catalog's default texts always parse: a test checks it.
        try! SettingsLoader.resolve(flags: [:], environment: [:], file: nil).settings
    }

    init() {}

    /// The routes the listener serves: `routes`, or the single route of `mode` — echo and
    /// command at exactly `path`, proxy on every path to `upstream` (its one member named
    /// `upstream`), the request built by `upstream_path`.
    public var routeTable: [RouteEntry] {
        guard routes.isEmpty else { return routes }
        switch mode {
        case .proxy:
            return [
                RouteEntry(
                    name: "/", path: "/", mode: .proxy,
                    pool: upstream.map { [PoolMember(name: "upstream", url: $0)] } ?? [],
                    target: upstreamPath == .fixed ? .fixed : .append)
            ]
        case .echo, .command:
            return [RouteEntry(name: path, path: path, exact: true, mode: mode)]
        }
    }

    /// Whether the WebSocket listener terminates TLS.
    public var tls: Bool { tlsCertFile != nil || !tlsCertificates.isEmpty }

    /// The rules each proxied pair's upstream leg is supervised by: the same as a client leg's,
    /// with the upstream's own ping interval and pong timeout when set.
    public var upstreamSupervisionPolicy: SupervisionPolicy {
        var policy = supervisionPolicy
        policy.pingInterval = upstreamPingInterval ?? pingInterval
        policy.pongTimeout = upstreamPongTimeout ?? pongTimeout
        policy.appHeartbeat = nil  // an application heartbeat is for the client: browsers
        return policy
    }

    /// A fresh backoff for a target's dial attempts.
    public var reconnectBackoff: ReconnectBackoff {
        ReconnectBackoff(maximum: reconnectMax, resetAfter: reconnectResetAfter)
    }

    /// The rules each connection is supervised by. The backlog ceiling (the bound on one
    /// connection's unwritten output, whatever the write timeout) is `max_backlog` plus one
    /// whole `max_message`: an allowed message can always be echoed or relayed.
    public var supervisionPolicy: SupervisionPolicy {
        SupervisionPolicy(
            pingInterval: pingInterval, pongTimeout: pongTimeout, readDeadline: readDeadline,
            closeTimeout: closeTimeout, writeTimeout: writeTimeout, maxBacklog: maxBacklog,
            backlogCeiling: maxBacklog + maxMessage, appHeartbeat: appHeartbeat)
    }

    /// The application-level heartbeat of connections made to vigild (and proxies' client legs).
    public var appHeartbeat: AppHeartbeat? {
        guard appPingInterval > .zero else { return nil }
        return AppHeartbeat(
            interval: appPingInterval, timeout: appPongTimeout, ping: appPingMessage, pong: appPongMessage)
    }
}

/// What vigild does with each message.
public enum ServerMode: String, Sendable, Hashable, CaseIterable {
    /// Send every text/binary message back unchanged.
    case echo
    /// Answer `{"requestID": …, "command": …}` requests (the seed protocol).
    case command
    /// Relay every connection to `upstream`, supervising both legs.
    case proxy
}

/// Whether every connection on the WebSocket listener begins with a PROXY protocol header.
public enum ProxyProtocolSetting: String, Sendable, Hashable, CaseIterable {
    case off, v1, v2, any
}

/// Which header a trusted hop names the client in. One, not both: a balancer that appends to
/// one passes the other on as the client wrote it.
public enum ForwardedHeaderSetting: String, Sendable, Hashable, CaseIterable {
    /// `X-Forwarded-For` (with `X-Forwarded-Proto`): what nginx, HAProxy and the clouds' HTTP
    /// balancers append to.
    case xForwardedFor = "x-forwarded-for"
    /// RFC 7239's `Forwarded` (`for=`, `proto=`).
    case forwarded
}

/// How a proxied request's target is built from the client's and the upstream URL's.
public enum UpstreamPath: String, Sendable, Hashable, CaseIterable {
    /// The upstream URL's path, then the client's path; the client's query (joined after the
    /// upstream URL's own, if it has one).
    case append
    /// Always the upstream URL's path and query; the client's are not forwarded.
    case fixed
}

/// The close status sent to a client whose upstream leg failed without a close handshake.
public enum UpstreamFailureCode: String, Sendable, Hashable, CaseIterable {
    /// 1014, Bad Gateway (RFC 6455 registry).
    case badGateway = "1014"
    /// 1011, Internal Error.
    case internalError = "1011"
    /// 1001, Going Away.
    case goingAway = "1001"

    public var code: UInt16 { UInt16(rawValue)! }
}

/// Where log records go.
public enum LogTarget: String, Sendable, Hashable, CaseIterable {
    /// The journal when stderr is connected to it or its socket accepts connections; else stderr.
    case auto
    case journal
    case stderr
}

public enum LogFormat: String, Sendable, Hashable, CaseIterable {
    case text
    case json
}

/// swift-log's levels, spelled as on the command line.
public enum LogLevel: String, Sendable, Hashable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// A host and port to listen on. Port 0 asks the kernel for a free port (handy in tests).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Whether only this host can reach the address: 127.0.0.0/8, ::1 or localhost.
    public var isLoopback: Bool {
        let name = host.lowercased()
        if name == "localhost" || name == "::1" || name == "0:0:0:0:0:0:0:1" { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// `127.0.0.1:8080`, `[::1]:8080`
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
