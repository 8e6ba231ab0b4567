import VigilSupervisor

/// One setting: its key (config file), flag and environment names derive from it, its default
/// as an operator would write it, a one-line help, and how to parse and print its value.
public struct SettingDefinition: Sendable {
    /// `ping_interval`
    public let key: String
    public let defaultText: String
    public let help: String
    let apply: @Sendable (inout VigilSettings, String) throws(ValueParsers.Failure) -> Void
    let render: @Sendable (VigilSettings) -> String

    /// `--ping-interval`
    public var flag: String { "--" + key.replacingOccurrences(of: "_", with: "-") }
    /// `VIGIL_PING_INTERVAL`
    public var environmentVariable: String { "VIGIL_" + key.uppercased() }
}

extension SettingDefinition {
    static func duration(_ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, Duration> & Sendable) -> Self {
        Self(key: key, defaultText: defaultText, help: help,
             apply: { settings, text throws(ValueParsers.Failure) in settings[keyPath: path] = try ValueParsers.duration(text) },
             render: { ValueParsers.text($0[keyPath: path]) })
    }

    static func size(_ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, Int> & Sendable) -> Self {
        Self(key: key, defaultText: defaultText, help: help,
             apply: { settings, text throws(ValueParsers.Failure) in settings[keyPath: path] = try ValueParsers.size(text) },
             render: { ValueParsers.text(size: $0[keyPath: path]) })
    }

    static func count(_ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, Int> & Sendable) -> Self {
        Self(key: key, defaultText: defaultText, help: help,
             apply: { settings, text throws(ValueParsers.Failure) in settings[keyPath: path] = try ValueParsers.count(text) },
             render: { String($0[keyPath: path]) })
    }

    static func address(_ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, ListenAddress> & Sendable) -> Self {
        Self(key: key, defaultText: defaultText, help: help,
             apply: { settings, text throws(ValueParsers.Failure) in settings[keyPath: path] = try ValueParsers.address(text) },
             render: { $0[keyPath: path].description })
    }

    static func choice<T: RawRepresentable & CaseIterable & Sendable>(
        _ key: String, _ defaultText: String, _ help: String, _ path: WritableKeyPath<VigilSettings, T> & Sendable
    ) -> Self where T.RawValue == String {
        Self(key: key, defaultText: defaultText, help: help + " (" + T.allCases.map(\.rawValue).joined(separator: "|") + ")",
             apply: { settings, text throws(ValueParsers.Failure) in settings[keyPath: path] = try ValueParsers.choice(text, of: T.self) },
             render: { $0[keyPath: path].rawValue })
    }
}

/// Every setting vigild knows, in the order `--print-config` and the README list them.
public enum SettingCatalog {
    public static let all: [SettingDefinition] = [
        .address("listen", "127.0.0.1:8080", "WebSocket listener address", \.listen),
        SettingDefinition(
            key: "path", defaultText: "/ws", help: "URL path of the WebSocket route",
            apply: { settings, text throws(ValueParsers.Failure) in settings.path = try ValueParsers.path(text) },
            render: { $0.path }),
        .choice("mode", "echo", "What vigild does with messages", \.mode),
        .address("status_listen", "127.0.0.1:9090", "Status API (HTTP) address", \.statusListen),
        .duration("ping_interval", "30s", "Ping every connection this often; 0 disables pings", \.pingInterval),
        .duration("pong_timeout", "10s", "Close a connection whose pong is this late", \.pongTimeout),
        .duration("read_deadline", "0", "Close a connection that sends no frame for this long; 0 disables it", \.readDeadline),
        .duration("handshake_timeout", "10s", "Drop a TCP connection that has not completed the upgrade by then", \.handshakeTimeout),
        .duration("close_timeout", "5s", "How long a peer has to answer vigild's close frame (also the shutdown drain)", \.closeTimeout),
        .size("max_backlog", "1MiB", "Unwritten outbound bytes per connection before it is closed as a slow consumer", \.maxBacklog),
        .size("max_frame", "64KiB", "Largest frame accepted (1009 beyond)", \.maxFrame),
        .size("max_message", "1MiB", "Largest message accepted, fragments together (1009 beyond)", \.maxMessage),
        .count("max_connections", "10000", "Open connections at most; further handshakes get HTTP 503", \.maxConnections),
        .count("close_history", "10000", "Close records kept for /closes (counters keep everything)", \.closeHistory),
        .choice("log", "auto", "Where logs go: the journal when stderr is connected to it or it is reachable, else stderr", \.log),
        .choice("log_format", "text", "Log line format on stderr", \.logFormat),
        .choice("log_level", "info", "Lowest level logged", \.logLevel),
    ]

    public static func definition(forKey key: String) -> SettingDefinition? {
        all.first { $0.key == key }
    }
}
