import VigilSupervisor

/// Every setting vigild runs with, fully parsed and validated.
///
/// Built by `SettingsLoader` from flags, environment, config file and defaults; the defaults live
/// in `SettingCatalog`, once, as the text an operator would write.
public struct VigilSettings: Sendable, Hashable {
    public var listen: ListenAddress
    public var path: String
    public var mode: ServerMode
    public var statusListen: ListenAddress
    public var pingInterval: Duration
    public var pongTimeout: Duration
    public var readDeadline: Duration
    public var handshakeTimeout: Duration
    public var closeTimeout: Duration
    public var maxBacklog: Int
    public var maxFrame: Int
    public var maxMessage: Int
    public var maxConnections: Int
    public var closeHistory: Int
    public var log: LogTarget
    public var logFormat: LogFormat
    public var logLevel: LogLevel

    /// The embedded defaults.
    public static var defaults: VigilSettings {
        // The catalog's default texts always parse: a test checks it.
        try! SettingsLoader.resolve(flags: [:], environment: [:], file: nil).settings
    }

    /// Blank values, each overwritten by the loader from its winning source.
    init() {
        listen = ListenAddress(host: "", port: 0)
        path = ""
        mode = .echo
        statusListen = ListenAddress(host: "", port: 0)
        pingInterval = .zero
        pongTimeout = .zero
        readDeadline = .zero
        handshakeTimeout = .zero
        closeTimeout = .zero
        maxBacklog = 0
        maxFrame = 0
        maxMessage = 0
        maxConnections = 0
        closeHistory = 0
        log = .auto
        logFormat = .text
        logLevel = .info
    }

    /// The per-connection timing rules these settings describe.
    public var supervisionPolicy: SupervisionPolicy {
        SupervisionPolicy(
            pingInterval: pingInterval, pongTimeout: pongTimeout, readDeadline: readDeadline,
            closeTimeout: closeTimeout)
    }
}

/// What vigild does with each message.
public enum ServerMode: String, Sendable, Hashable, CaseIterable {
    /// Send every text/binary message back unchanged.
    case echo
    /// Answer `{"requestID": …, "command": …}` requests (the seed protocol).
    case command
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

    /// `127.0.0.1:8080`, `[::1]:8080`
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
