/// Where a setting's value came from.
public enum SettingSource: Sendable, Hashable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(String)
    /// A route's own value, in a config file's `routes`.
    case route(name: String, file: String)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let flag): "flag \(flag)"
        case .environment(let name): "environment \(name)"
        case .file(let path): "config file \(path)"
        case .route(let name, let file): "route \(name) in config file \(file)"
        case .defaultValue: "default"
        }
    }
}

/// A configuration problem, worded for the operator: it names the key, the value and the source.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The effective settings and where each came from.
public struct ResolvedSettings: Sendable, Hashable {
    public var settings: VigilSettings
    /// Keyed by setting key (`ping_interval`).
    public var sources: [String: SettingSource]

    /// One line per setting: key, effective value, source. What `vigild --print-config` prints.
    public func report() -> String {
        let width = SettingCatalog.all.map(\.key.count).max() ?? 0
        let values = SettingCatalog.all.map { $0.render(settings) }
        let valueWidth = values.map(\.count).max() ?? 0
        let lines = zip(SettingCatalog.all, values).map { definition, value in
            definition.key.padding(to: width) + "  " + value.padding(to: valueWidth) + "  # "
                + (sources[definition.key] ?? .defaultValue).description
        }
        return (lines + settings.routes.map(Self.describe)).joined(separator: "\n")
    }

    /// `# route chat: /chat (any host) proxy least_connections chat-1=ws://… chat-2=ws://… upstream_try_timeout=2s`:
    /// a route as read, its defaults filled in (after the settings, as comments).
    static func describe(_ route: RouteEntry) -> String {
        let hosts = route.hosts.isEmpty ? "any host" : route.hosts.joined(separator: ",")
        let members = route.pool.map { "\($0.name)=\($0.url)" + ($0.drain ? " (drain)" : "") }
        let overrides = route.overrides.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return
            (["# route \(route.name): \(route.path) (\(hosts)) \(route.mode.rawValue)"]
            + (route.pool.isEmpty ? [] : [route.balance.rawValue]) + members + overrides).joined(separator: " ")
    }

    /// Takes `definition`'s value (and its source) from `other`: how a reload applies a setting.
    public mutating func adopt(_ definition: SettingDefinition, from other: ResolvedSettings) {
        definition.transfer(&settings, other.settings)
        sources[definition.key] = other.sources[definition.key]
    }

    /// The effective value of a setting as text (`30s`, `1MiB`).
    public func text(forKey key: String) -> String? {
        SettingCatalog.definition(forKey: key)?.render(settings)
    }
}

/// Builds `VigilSettings` from flags, then `VIGIL_*` environment variables, then the config file,
/// then the defaults — the first that names a setting wins.
///
/// Why not apple/swift-configuration: its providers cannot enumerate the keys a file or the
/// environment holds, so a misspelt key (`ping_intervall: 5s`) would be silently ignored — the
/// one mistake a health daemon's operator most needs to hear about. Every vigil value is text with
/// a unit that we parse ourselves anyway, so what remains is this short precedence loop.
public enum SettingsLoader {
    /// The environment variable naming a config file when `--config` is not given.
    public static let configEnvironmentVariable = "VIGIL_CONFIG"

    /// - Parameters:
    ///   - flags: raw flag values keyed by setting key (`ping_interval`), as typed.
    ///   - environment: the process environment; only `VIGIL_*` variables are read.
    ///   - configPath: `--config`, if given; else `VIGIL_CONFIG` is consulted.
    public static func load(
        flags: [String: String], environment: [String: String], configPath: String?
    ) throws(ConfigurationError) -> ResolvedSettings {
        let path = configPath ?? environment[configEnvironmentVariable]
        let file = try path.map { path throws(ConfigurationError) in try ConfigFile.read(path: path) }
        return try resolve(flags: flags, environment: environment, file: file)
    }

    /// The setting flags of a command line (`--ping-interval 5s`, `--ping-interval=5s`), keyed
    /// by setting key; of a flag given twice the last wins. Anything that is not a known
    /// setting's flag with a value is an error.
    public static func flagValues(_ arguments: [String]) throws(ConfigurationError) -> [String: String] {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                throw ConfigurationError("unexpected argument \"\(argument)\"; settings are given as --name value")
            }
            let (flag, inline) =
                if let equals = argument.firstIndex(of: "=") {
                    (String(argument[..<equals]), Optional(String(argument[argument.index(after: equals)...])))
                } else {
                    (argument, nil)
                }
            guard let definition = SettingCatalog.definition(forFlag: flag) else {
                throw ConfigurationError(
                    "unknown option \(flag); settings: " + SettingCatalog.all.map(\.flag).joined(separator: ", ")
                        + " (and --config, --print-config, --help, --version)")
            }
            let value: String
            if let inline {
                value = inline
            } else if index < arguments.count {
                value = arguments[index]
                index += 1
            } else {
                throw ConfigurationError("\(flag) needs a value (default: \(definition.defaultText))")
            }
            values[definition.key] = value  // as with any option, the last one given wins
        }
        return values
    }

    public static func resolve(
        flags: [String: String], environment: [String: String], file: ConfigFile?
    ) throws(ConfigurationError) -> ResolvedSettings {
        try rejectUnknownKeys(flags: flags, environment: environment, file: file)
        var settings = VigilSettings()
        var sources: [String: SettingSource] = [:]
        for definition in SettingCatalog.all {
            let (text, source): (String, SettingSource) =
                if let value = flags[definition.key] {
                    (value, .flag(definition.flag))
                } else if let value = environment[definition.environmentVariable] {
                    (value, .environment(definition.environmentVariable))
                } else if let file, let value = file.values[definition.key] {
                    (value, .file(file.path))
                } else {
                    (definition.defaultText, .defaultValue)
                }
            do {
                try definition.apply(&settings, text)
            } catch {
                throw ConfigurationError(
                    "invalid value \"\(text)\" for \(definition.key) (\(source)): expected \(error.expected)")
            }
            sources[definition.key] = source
        }
        settings.targets = file?.targets ?? []
        settings.tlsCertificates = file?.tlsCertificates ?? []
        settings.routes = file?.routes ?? []
        let resolved = ResolvedSettings(settings: settings, sources: sources)
        if let file { try rejectSingleRoute(resolved, file: file.path) }
        try validate(resolved)
        if let file { try validateRoutes(resolved, file: file.path) }
        return resolved
    }

    private static func rejectUnknownKeys(
        flags: [String: String], environment: [String: String], file: ConfigFile?
    ) throws(ConfigurationError) {
        let known = Set(SettingCatalog.all.map(\.key))
        if let key = flags.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError("unknown setting \(key) given as a flag")
        }
        let knownVariables = Set(SettingCatalog.all.map(\.environmentVariable) + [configEnvironmentVariable])
        if let name = environment.keys.sorted().first(where: { $0.hasPrefix("VIGIL_") && !knownVariables.contains($0) })
        {
            throw ConfigurationError(
                "unknown environment variable \(name)=\"\(environment[name]!)\": vigild reads only "
                    + knownVariables.sorted().joined(separator: ", "))
        }
        if let file, let key = file.values.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError(
                "unknown key \(key) (value \"\(file.values[key]!)\") in config file \(file.path); known keys: "
                    + SettingCatalog.all.map(\.key).joined(separator: ", "))
        }
    }

    /// Ranges and relations between settings.
    private static func validate(_ resolved: ResolvedSettings) throws(ConfigurationError) {
        let s = resolved.settings
        func fail(_ key: String, _ rule: String) -> ConfigurationError {
            ConfigurationError(
                "invalid value \"\(resolved.text(forKey: key)!)\" for \(key) (\(resolved.sources[key]!)): \(rule)")
        }
        if s.routes.isEmpty {
            try validateConnectionRules(resolved)  // else each route's, over these (validateRoutes)
        }
        if s.handshakeTimeout == .zero { throw fail("handshake_timeout", "must be more than 0") }
        if s.closeTimeout == .zero { throw fail("close_timeout", "must be more than 0") }
        if s.maxFrame < 125 { throw fail("max_frame", "must be at least 125 bytes (the largest control frame)") }
        if s.maxFrame > Int(UInt32.max) { throw fail("max_frame", "must be below 4GiB") }
        if s.maxMessage < 1 { throw fail("max_message", "must be at least 1 byte") }
        if s.maxBacklog < 1024 { throw fail("max_backlog", "must be at least 1KiB") }
        if !(1...1_000_000).contains(s.maxConnections) {
            throw fail("max_connections", "must be between 1 and 1000000")
        }
        if !(1...1_000_000).contains(s.closeHistory) { throw fail("close_history", "must be between 1 and 1000000") }
        if s.mode == .proxy && s.upstream == nil {
            throw fail(
                "upstream",
                "is required in proxy mode (mode \(resolved.text(forKey: "mode")!)): the ws:// or wss:// URL to relay to"
            )
        }
        if s.mode != .proxy && s.upstream != nil {
            throw fail("upstream", "is used only in proxy mode, and mode is \(s.mode.rawValue) (set mode: proxy)")
        }
        if !s.statusListen.isLoopback && s.statusTokenFile == nil && !s.statusInsecure {
            throw fail(
                "status_listen",
                "is not a loopback address, so anyone who can reach it could read every connection; set status_token_file (a bearer token for all but \(StatusOpenEndpoints.text)), or status_insecure: true to serve it openly anyway"
            )
        }
        if !(1...10_000).contains(s.statusMaxConnections) {
            throw fail("status_max_connections", "must be between 1 and 10000")
        }
        if s.statusRequestTimeout == .zero { throw fail("status_request_timeout", "must be more than 0") }
        if s.statusIdleTimeout == .zero { throw fail("status_idle_timeout", "must be more than 0") }
        if !(1...1_000_000).contains(s.maxPendingHandshakes) {
            throw fail("max_pending_handshakes", "must be between 1 and 1000000")
        }
        if s.maxConnectionsPerIP > 1_000_000 {
            throw fail("max_connections_per_ip", "must be at most 1000000 (0: no limit)")
        }
        if let listen = s.listen, listen == s.statusListen && listen.port != 0 {
            throw fail("status_listen", "must differ from listen (\(listen))")
        }
        if s.listen == nil && s.mode == .proxy {
            throw fail("listen", "must be an address in proxy mode: the proxy's clients connect to it")
        }
        if s.listen == nil && !s.routes.isEmpty {
            throw fail("listen", "must be an address: routes are the WebSocket listener's")
        }
        if (s.tlsCertFile == nil) != (s.tlsKeyFile == nil) {
            let (given, missing) =
                s.tlsCertFile == nil ? ("tls_key_file", "tls_cert_file") : ("tls_cert_file", "tls_key_file")
            throw fail(given, "needs \(missing) too: a certificate is served with its private key")
        }
        if s.proxyProtocol != .off && s.trustedProxies.isEmpty {
            throw fail(
                "proxy_protocol",
                "needs trusted_proxies: the balancers whose PROXY headers are believed (from any other peer a header is ignored)"
            )
        }
        if s.proxyProtocol != .off && s.listen == nil {
            throw fail("proxy_protocol", "is for the WebSocket listener, and listen is none")
        }
        if s.tls && s.listen == nil {
            throw ConfigurationError(
                "TLS (tls_cert_file or tls_certificates) is for the WebSocket listener, and listen is none")
        }
        if s.reconnectMax < .seconds(1) { throw fail("reconnect_max", "must be at least 1s") }
        if s.reconnectResetAfter == .zero { throw fail("reconnect_reset_after", "must be more than 0") }
        for target in s.targets {
            let policy = target.supervisionPolicy(global: s.supervisionPolicy)
            if policy.pingInterval > .zero && policy.pongTimeout == .zero {
                throw ConfigurationError(
                    "target \(target.name): pong_timeout must be more than 0 while it is pinged (set pong_timeout on the target, or the global one)"
                )
            }
        }
    }
}

extension SettingsLoader {
    /// What each connection's settings must satisfy, at the top level and in every route.
    fileprivate static func validateConnectionRules(_ resolved: ResolvedSettings) throws(ConfigurationError) {
        let s = resolved.settings
        func fail(_ key: String, _ rule: String) -> ConfigurationError {
            ConfigurationError(
                "invalid value \"\(resolved.text(forKey: key)!)\" for \(key) (\(resolved.sources[key] ?? .defaultValue)): \(rule)"
            )
        }
        if s.pingInterval > .zero && s.pongTimeout == .zero {
            throw fail(
                "pong_timeout",
                "must be more than 0 while pings are enabled (ping_interval \(resolved.text(forKey: "ping_interval")!))"
            )
        }
        if s.appPingInterval > .zero && s.appPongTimeout == .zero {
            throw fail(
                "app_pong_timeout",
                "must be more than 0 while the application-level heartbeat runs (app_ping_interval \(resolved.text(forKey: "app_ping_interval")!))"
            )
        }
        if s.appPingMessage.utf8.count > s.maxFrame {
            throw fail(
                "app_ping_message", "must fit in one frame of max_frame (\(resolved.text(forKey: "max_frame")!))")
        }
        if s.appPingInterval > .zero && s.mode == .echo && s.appPingMessage == s.appPongMessage {
            throw fail(
                "app_pong_message",
                "must differ from app_ping_message in echo mode: every client's echo would answer it")
        }
        if s.mode == .proxy && s.upstreamConnectTimeout == .zero {
            throw fail("upstream_connect_timeout", "must be more than 0")
        }
        if s.upstreamTryTimeout == .zero { throw fail("upstream_try_timeout", "must be more than 0") }
        if let interval = s.upstreamPingInterval, interval > .zero, (s.upstreamPongTimeout ?? s.pongTimeout) == .zero {
            throw fail("upstream_pong_timeout", "must be more than 0 while the upstream leg is pinged")
        }
    }

    /// With `routes`, the settings of the single route must not be given too (which would win?).
    fileprivate static func rejectSingleRoute(_ resolved: ResolvedSettings, file: String) throws(ConfigurationError) {
        guard !resolved.settings.routes.isEmpty else { return }
        for key in ["mode", "path", "upstream", "upstream_path"] {
            guard let source = resolved.sources[key], source != .defaultValue else { continue }
            throw ConfigurationError(
                "\(key) (\(source)) describes the single route, and config file \(file) lists routes: give each route its own path, mode or upstream instead"
            )
        }
    }

    /// Each route's own settings over the top-level ones must hold as the top-level ones do.
    fileprivate static func validateRoutes(_ resolved: ResolvedSettings, file: String) throws(ConfigurationError) {
        let s = resolved.settings
        for route in s.routes {
            var sources = resolved.sources
            for key in route.overrides.keys { sources[key] = .route(name: route.name, file: file) }
            try validateConnectionRules(ResolvedSettings(settings: route.settings(over: s), sources: sources))
        }
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
