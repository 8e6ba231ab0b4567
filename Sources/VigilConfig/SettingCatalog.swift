import VigilSupervisor
import VigilText

/// One setting: its key (config file), flag and environment names derive from it, its default
/// as an operator would write it, a one-line help, whether a reload applies it, and how to
/// parse, print and hand over its value. The only place a setting is described: the flags,
/// the environment, the file, `--print-config`, `/status` and the reload all read this.
public struct SettingDefinition: Sendable {
    /// `ping_interval`
    public let key: String
    public let defaultText: String
    public let help: String
    /// Whether a reload (SIGHUP) applies a new value to live and new connections; other
    /// settings keep their running value until a restart.
    public let reloadable: Bool
    /// Whether a config file may give the value as a YAML list (read as the items joined by commas).
    public let list: Bool
    /// Whether a route (`routes:`) may set its own value for its connections.
    public private(set) var perRoute = false
    let apply: @Sendable (inout VigilSettings, String) throws(ValueParsers.Failure) -> Void
    let render: @Sendable (VigilSettings) -> String
    /// Copies this setting's value from the second settings into the first (a reload).
    let transfer: @Sendable (inout VigilSettings, VigilSettings) -> Void

    /// The same setting, which a route may also set for itself.
    var alsoPerRoute: Self {
        var definition = self
        definition.perRoute = true
        return definition
    }

    /// `--ping-interval`
    public var flag: String { "--" + SettingCatalog.dashed(key) }
    /// `VIGIL_PING_INTERVAL`
    public var environmentVariable: String { "VIGIL_" + key.uppercased() }
}

extension SettingDefinition {
    /// A setting stored at `path`, parsed by `parse` and printed by `render`.
    static func setting<Value: Sendable>(
        _ key: String, _ defaultText: String, _ help: String, list: Bool = false, reloadable: Bool = false,
        _ path: WritableKeyPath<VigilSettings, Value> & Sendable,
        parse: @escaping @Sendable (String) throws(ValueParsers.Failure) -> Value,
        render: @escaping @Sendable (Value) -> String
    ) -> Self {
        Self(
            key: key, defaultText: defaultText, help: help, reloadable: reloadable, list: list,
            apply: { settings, text throws(ValueParsers.Failure) in settings[keyPath: path] = try parse(text) },
            render: { render($0[keyPath: path]) },
            transfer: { settings, from in settings[keyPath: path] = from[keyPath: path] })
    }

    static func duration(
        _ key: String, _ defaultText: String, _ help: String, reloadable: Bool = false,
        _ path: WritableKeyPath<VigilSettings, Duration> & Sendable
    ) -> Self {
        setting(
            key, defaultText, help, reloadable: reloadable, path, parse: ValueParsers.duration,
            render: DurationText.setting)
    }

    static func size(
        _ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, Int> & Sendable
    ) -> Self {
        setting(key, defaultText, help, path, parse: ValueParsers.size, render: ValueParsers.text(size:))
    }

    static func count(
        _ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, Int> & Sendable
    ) -> Self {
        setting(key, defaultText, help, path, parse: ValueParsers.count, render: { String($0) })
    }

    static func address(
        _ key: String, _ defaultText: String, _ help: String,
        _ path: WritableKeyPath<VigilSettings, ListenAddress> & Sendable
    ) -> Self {
        setting(key, defaultText, help, path, parse: ValueParsers.address, render: { $0.description })
    }

    static func choice<T: RawRepresentable & CaseIterable & Sendable>(
        _ key: String, _ defaultText: String, _ help: String, reloadable: Bool = false,
        _ path: WritableKeyPath<VigilSettings, T> & Sendable
    ) -> Self where T.RawValue == String {
        setting(
            key, defaultText, help + " (" + T.allCases.map(\.rawValue).joined(separator: "|") + ")",
            reloadable: reloadable, path,
            parse: { text throws(ValueParsers.Failure) in try ValueParsers.choice(text, of: T.self) },
            render: { $0.rawValue })
    }
}

/// Every setting vigild knows, in the order `--print-config` and the README list them.
public enum SettingCatalog {
    public static let all: [SettingDefinition] = [
        .setting(
            "listen", "127.0.0.1:8080",
            "WebSocket listener address (none: no listener, vigild only monitors its targets)",
            \.listen, parse: ValueParsers.optionalAddress, render: { $0?.description ?? "none" }),
        .setting(
            "path", "/ws", "URL path of the WebSocket route (without routes: in the config file)", \.path,
            parse: ValueParsers.path, render: { $0 }),
        .choice("mode", "echo", "What vigild does with messages (without routes: in the config file)", \.mode),
        .address("status_listen", "127.0.0.1:9090", "Status API (HTTP) address", \.statusListen),
        .setting(
            "status_socket", "none",
            "Also serve the status API on this Unix socket (access by the socket's mode, owner and group)",
            \.statusSocket, parse: ValueParsers.filePath, render: { $0 ?? "none" }),
        .setting(
            "status_socket_mode", "0660", "Permissions of status_socket (octal)", \.statusSocketMode,
            parse: ValueParsers.fileMode, render: { "0" + String($0, radix: 8) }),
        .setting(
            "status_socket_owner", "none", "User that owns status_socket (none: vigild's own)", \.statusSocketOwner,
            parse: ValueParsers.accountName, render: { $0 ?? "none" }),
        .setting(
            "status_socket_group", "none", "Group of status_socket (none: vigild's own)", \.statusSocketGroup,
            parse: ValueParsers.accountName, render: { $0 ?? "none" }),
        .setting(
            "status_token_file", "none",
            "File holding a bearer token every status request but \(StatusOpenEndpoints.text) must carry (Authorization: Bearer …) on status_listen",
            reloadable: true, \.statusTokenFile, parse: ValueParsers.filePath, render: { $0 ?? "none" }),
        .setting(
            "status_insecure", "false",
            "Serve a status_listen that is not a loopback address without status_token_file",
            \.statusInsecure, parse: ValueParsers.boolean, render: { $0 ? "true" : "false" }),
        .setting(
            "status_hosts", "none",
            "Host names the status API answers to besides IP addresses and localhost (421 for others: DNS rebinding)",
            list: true, reloadable: true, \.statusHosts, parse: ValueParsers.hostNames,
            render: { $0.isEmpty ? "none" : $0.joined(separator: ",") }),
        .count(
            "status_max_connections", "64", "Status API connections at most; further ones get HTTP 503",
            \.statusMaxConnections),
        .duration(
            "status_request_timeout", "5s", "A status request head must arrive within this long (HTTP 408 beyond)",
            \.statusRequestTimeout),
        .duration(
            "status_idle_timeout", "30s", "Close a keep-alive status connection idle this long", \.statusIdleTimeout),
        .duration(
            "ping_interval", "30s", "Ping every connection this often; 0 disables pings", reloadable: true,
            \.pingInterval
        ).alsoPerRoute,
        .duration("pong_timeout", "10s", "Close a connection whose pong is this late", reloadable: true, \.pongTimeout)
            .alsoPerRoute,
        .duration(
            "read_deadline", "0", "Close a connection that sends no frame for this long; 0 disables it",
            reloadable: true,
            \.readDeadline
        ).alsoPerRoute,
        .duration(
            "app_ping_interval", "0",
            "Send app_ping_message to each client this often and expect app_pong_message (browser pages that protocol pings cannot see); 0 disables it",
            reloadable: true, \.appPingInterval
        ).alsoPerRoute,
        .duration(
            "app_pong_timeout", "10s", "Close a client (4000, app_pong_timeout) whose app_pong_message is this late",
            reloadable: true, \.appPongTimeout
        ).alsoPerRoute,
        .setting(
            "app_ping_message", #"{"type":"ping"}"#, "The application-level ping, sent as a text message",
            reloadable: true,
            \.appPingMessage, parse: ValueParsers.messageText, render: { $0 }
        ).alsoPerRoute,
        .setting(
            "app_pong_message", #"{"type":"pong"}"#,
            "The text message that answers it, byte for byte; taken out of the stream (not echoed or relayed)",
            reloadable: true,
            \.appPongMessage, parse: ValueParsers.messageText, render: { $0 }
        ).alsoPerRoute,
        .duration(
            "handshake_timeout", "10s", "Drop a TCP connection that has not completed the upgrade by then",
            \.handshakeTimeout),
        .duration(
            "close_timeout", "5s", "How long a peer has to answer vigild's close frame (also the shutdown drain)",
            reloadable: true, \.closeTimeout),
        .duration(
            "write_timeout", "10s",
            "Close a connection as a slow consumer when its unwritten output stays over max_backlog this long; 0: only at max_backlog + max_message",
            reloadable: true, \.writeTimeout),
        .size(
            "max_backlog", "1MiB",
            "Unwritten output per connection over which write_timeout runs (max_backlog + max_message closes at once)",
            \.maxBacklog),
        .size("max_frame", "64KiB", "Largest frame accepted (1009 beyond)", \.maxFrame),
        .size("max_message", "1MiB", "Largest message accepted, fragments together (1009 beyond)", \.maxMessage),
        .count(
            "max_connections", "10000", "Open connections at most; further handshakes get HTTP 503", \.maxConnections),
        .count("close_history", "10000", "Close records kept for /closes (counters keep everything)", \.closeHistory),
        .count(
            "max_pending_handshakes", "1024",
            "TCP connections waiting for their WebSocket upgrade at most; further ones get HTTP 503",
            \.maxPendingHandshakes),
        .count(
            "max_connections_per_ip", "0",
            "Connections (pending or open) from one IP address at most; further ones get HTTP 429; 0: no limit",
            \.maxConnectionsPerIP),
        .setting(
            "allowed_origins", "same-origin",
            "Origins whose pages may connect: same-origin (Origin = Host), or a comma-separated list of origins, https://*.example.com wildcards, or *",
            list: true, reloadable: true, \.allowedOrigins, parse: ValueParsers.origins,
            render: { $0.map { $0.map(\.description).joined(separator: ",") } ?? "same-origin" }
        ).alsoPerRoute,
        .setting(
            "require_origin", "false",
            "Refuse handshakes without an Origin header (clients that are not browsers send none)",
            reloadable: true, \.requireOrigin, parse: ValueParsers.boolean, render: { $0 ? "true" : "false" }
        ).alsoPerRoute,
        .setting(
            "trusted_proxies", "none",
            "Addresses and CIDR blocks of the load balancers and proxies in front of vigild: from them, a PROXY header's address and the Forwarded / X-Forwarded-For chain name the client",
            list: true, reloadable: true, \.trustedProxies, parse: ValueParsers.addressRanges,
            render: { $0.isEmpty ? "none" : $0.map(\.description).joined(separator: ",") }),
        .choice(
            "forwarded_header", "x-forwarded-for",
            "The header a trusted hop names the client in (the other is ignored: a balancer passes it on as the client wrote it)",
            \.forwardedHeader),
        .choice(
            "proxy_protocol", "off",
            "Every connection on the WebSocket listener begins with a PROXY protocol header (HAProxy's, as load balancers send it); off: none",
            \.proxyProtocol),
        .setting(
            "tls_cert_file", "none",
            "PEM certificate chain (the certificate, then its intermediates) of TLS on the WebSocket listener, which then serves wss:// only; re-read at every reload",
            reloadable: true, \.tlsCertFile, parse: ValueParsers.filePath, render: { $0 ?? "none" }),
        .setting(
            "tls_key_file", "none", "PEM private key of tls_cert_file; re-read at every reload", reloadable: true,
            \.tlsKeyFile, parse: ValueParsers.filePath, render: { $0 ?? "none" }),
        .choice(
            "tls_min_version", "1.2", "The oldest TLS version the WebSocket listener accepts", reloadable: true,
            \.tlsMinVersion),
        .setting(
            "upstream", "none",
            "Proxy mode: the WebSocket service to relay every connection to (ws:// or wss://); routes: in the config file for several services and pools",
            reloadable: true, \.upstream, parse: ValueParsers.webSocketURL, render: { $0?.description ?? "none" }),
        .choice(
            "upstream_path", "append", "Proxy mode: the upstream path then the client's, or always the upstream's own",
            reloadable: true, \.upstreamPath),
        .duration(
            "upstream_connect_timeout", "5s",
            "Proxy mode: how long the upstream has to answer the handshake (HTTP 504 beyond)",
            reloadable: true, \.upstreamConnectTimeout
        ).alsoPerRoute,
        .duration(
            "upstream_try_timeout", "1s",
            "Proxy mode: how long one upstream of a pool has to answer before the handshake moves on to the next (within upstream_connect_timeout; the last one left gets what remains of it)",
            reloadable: true, \.upstreamTryTimeout
        ).alsoPerRoute,
        .setting(
            "upstream_ca_file", "none",
            "Proxy mode: PEM certificates trusted for a wss:// upstream, besides the system's",
            reloadable: true, \.upstreamCAFile, parse: ValueParsers.filePath, render: { $0 ?? "none" }
        ).alsoPerRoute,
        .setting(
            "upstream_ping_interval", "inherit",
            "Proxy mode: ping the upstream leg this often (inherit: ping_interval)",
            reloadable: true, \.upstreamPingInterval, parse: ValueParsers.inheritedDuration,
            render: { $0.map(DurationText.setting) ?? "inherit" }
        ).alsoPerRoute,
        .setting(
            "upstream_pong_timeout", "inherit", "Proxy mode: the upstream leg's pong timeout (inherit: pong_timeout)",
            reloadable: true, \.upstreamPongTimeout, parse: ValueParsers.inheritedDuration,
            render: { $0.map(DurationText.setting) ?? "inherit" }
        ).alsoPerRoute,
        .choice(
            "upstream_failure_code", "1014", "Proxy mode: the close status a client gets when its upstream leg fails",
            reloadable: true, \.upstreamFailureCode
        ).alsoPerRoute,
        .setting(
            "compression", "on",
            "permessage-deflate: answered when a client offers it (echo and command modes compress themselves; proxy mode passes the offers upstream and relays compressed messages as they are) and offered to monitor targets; off: no extension anywhere",
            \.compression, parse: ValueParsers.boolean, render: { $0 ? "on" : "off" }),
        .setting(
            "compression_level", "1", "The zlib level of what vigild compresses, 1 (fastest) to 9 (smallest)",
            \.compressionLevel,
            parse: { text throws(ValueParsers.Failure) in try ValueParsers.number(text, in: 1...9) },
            render: { String($0) }),
        .setting(
            "compression_window_bits", "15",
            "The largest window vigild compresses with, 9 to 15 (a peer may ask for less, down to 8)",
            \.compressionWindowBits,
            parse: { text throws(ValueParsers.Failure) in try ValueParsers.number(text, in: 9...15) },
            render: { String($0) }),
        .size(
            "compression_min_size", "128", "Messages shorter than this (in bytes) are sent uncompressed",
            \.compressionMinSize),
        .setting(
            "compression_context_takeover", "false",
            "Keep deflate contexts across messages (smaller output for small, similar messages; each connection that uses compression then holds zlib streams of its own, about 300 KiB allocated); false: vigild and its peer reset them per message, and one compressor per event loop serves every connection",
            \.compressionContextTakeover, parse: ValueParsers.boolean, render: { $0 ? "true" : "false" }),
        .duration(
            "reconnect_max", "1m", "Monitor targets: the longest wait between dial attempts", reloadable: true,
            \.reconnectMax),
        .duration(
            "reconnect_reset_after", "1m", "Monitor targets: a connection up this long resets the backoff",
            reloadable: true, \.reconnectResetAfter),
        .duration(
            "drain_window", "0", "Spread the 1001s of a stop over this long instead of one burst (0: all at once)",
            reloadable: true, \.drainWindow),
        .choice(
            "log", "auto", "Where logs go: the journal when stderr is connected to it or it is reachable, else stderr",
            \.log),
        .choice("log_format", "text", "Log line format on stderr", \.logFormat),
        .choice("log_level", "info", "Lowest level logged", \.logLevel),
    ]

    public static func definition(forKey key: String) -> SettingDefinition? {
        all.first { $0.key == key }
    }

    public static func definition(forFlag flag: String) -> SettingDefinition? {
        all.first { $0.flag == flag }
    }

    /// `ping_interval` → `ping-interval`, without Foundation (this runs at every start).
    static func dashed(_ key: String) -> String {
        String(decoding: key.utf8.map { $0 == UInt8(ascii: "_") ? UInt8(ascii: "-") : $0 }, as: UTF8.self)
    }

    /// The settings as `vigild --help` lists them, wrapped to fit 80 columns (the argument
    /// parser would wrap longer lines without their indent). Built at every start (ArgumentParser
    /// reads a command's discussion before it parses), so it stays in plain Swift strings:
    /// through Foundation it was a third of start-up.
    public static var helpText: String {
        all.map { definition in
            let value = "<" + dashed(definition.key) + ">"
            let text =
                "\(definition.help) (default: \(definition.defaultText); env \(definition.environmentVariable)"
                + (definition.perRoute ? "; per route" : "") + (definition.reloadable ? "; reloadable" : "") + ")"
            return "  \(definition.flag) \(value)\n" + wrapped(text, indent: 8, width: 79)
        }.joined(separator: "\n")
    }

    /// `text` wrapped at `width` columns after an `indent`, counting Unicode scalars. Works on
    /// UTF-8 bytes: splitting and counting Characters (grapheme breaking) was most of the cost.
    static func wrapped(_ text: String, indent: Int, width: Int) -> String {
        let space = UInt8(ascii: " ")
        let margin = [UInt8](repeating: space, count: indent)
        var output: [UInt8] = []
        var line: [UInt8] = []
        var lineLength = 0  // in scalars
        func endLine() {
            if !output.isEmpty { output.append(UInt8(ascii: "\n")) }
            output += margin
            output += line
        }
        for word in text.utf8.split(separator: space) {
            let wordLength = word.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }  // not a continuation byte
            if !line.isEmpty && indent + lineLength + 1 + wordLength > width {
                endLine()
                line = []
                lineLength = 0
            }
            if !line.isEmpty {
                line.append(space)
                lineLength += 1
            }
            line += word
            lineLength += wordLength
        }
        if !line.isEmpty { endLine() }
        return String(decoding: output, as: UTF8.self)
    }
}
