import ArgumentParser
import FoundationEssentials
import Logging
import ServiceLifecycle
import UnixSignals
import VigilConfig
import VigilServer
import VigilSystemd

#if canImport(Glibc)
import Glibc
#endif

/// `vigild`: the WebSocket heartbeat and connection-health daemon.
@main
struct Vigild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigild",
        abstract: "Supervise WebSocket connections: heartbeats, deadlines and an exact record of every close.",
        discussion: """
            Every setting comes from a flag, else a VIGIL_* environment variable, else the config file \
            (--config or VIGIL_CONFIG; YAML or JSON, keys like ping_interval), else its default. \
            Durations take ms, s or m (500ms, 30s, 2m; 0 turns a timer off); sizes take KiB or MiB.
            """,
        version: "vigild 0.1.0")

    @Option(help: help("listen")) var listen: String?
    @Option(help: help("path")) var path: String?
    @Option(help: help("mode")) var mode: String?
    @Option(help: help("status_listen")) var statusListen: String?
    @Option(help: help("ping_interval")) var pingInterval: String?
    @Option(help: help("pong_timeout")) var pongTimeout: String?
    @Option(help: help("read_deadline")) var readDeadline: String?
    @Option(help: help("handshake_timeout")) var handshakeTimeout: String?
    @Option(help: help("close_timeout")) var closeTimeout: String?
    @Option(help: help("max_backlog")) var maxBacklog: String?
    @Option(help: help("max_frame")) var maxFrame: String?
    @Option(help: help("max_message")) var maxMessage: String?
    @Option(help: help("max_connections")) var maxConnections: String?
    @Option(help: help("close_history")) var closeHistory: String?
    @Option(help: help("log")) var log: String?
    @Option(help: help("log_format")) var logFormat: String?
    @Option(help: help("log_level")) var logLevel: String?

    @Option(help: "Config file (YAML or JSON); also VIGIL_CONFIG.") var config: String?
    @Flag(help: "Print the effective configuration, with the source of each value, and exit.") var printConfig = false

    /// The flags given, keyed like the config file.
    private var flagValues: [String: String] {
        let given: [(String, String?)] = [
            ("listen", listen), ("path", path), ("mode", mode), ("status_listen", statusListen),
            ("ping_interval", pingInterval), ("pong_timeout", pongTimeout), ("read_deadline", readDeadline),
            ("handshake_timeout", handshakeTimeout), ("close_timeout", closeTimeout), ("max_backlog", maxBacklog),
            ("max_frame", maxFrame), ("max_message", maxMessage), ("max_connections", maxConnections),
            ("close_history", closeHistory), ("log", log), ("log_format", logFormat), ("log_level", logLevel),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { key, value in value.map { (key, $0) } })
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let flags = flagValues
        let configPath = config
        let load = { @Sendable () throws -> ResolvedSettings in
            try SettingsLoader.load(flags: flags, environment: environment, configPath: configPath)
        }
        let resolved: ResolvedSettings
        let inherited: InheritedSockets?
        do {
            resolved = try load()
            inherited = printConfig ? nil : try SystemdListenSockets.take()
        } catch {
            StandardError.write("vigild: \(error)\n")
            throw ExitCode(2)
        }
        if printConfig {
            print(resolved.report())
            return
        }
        let settings = resolved.settings
        let journal: Bool
        switch settings.log {
        case .stderr:
            journal = false
        case .auto:
            journal = JournalLogHandler.stderrIsJournal(environment: environment) || JournalWriter.isReachable()
        case .journal:
            guard JournalWriter.isReachable() else {
                StandardError.write("vigild: log is journal, but nothing accepts connections on \(JournalWriter.socketPath)\n")
                throw ExitCode(2)
            }
            journal = true
        }
        bootstrapLogging(settings, journal: journal)
        let logger = Logger(label: "vigild")
        checkOpenFileLimit(maxConnections: settings.maxConnections, logger: logger)

        var watchdogInterval: Duration?
        switch SystemdWatchdog.setting(environment: environment) {
        case .disabled: break
        case .enabled(let interval): watchdogInterval = interval
        case .invalid(let description): logger.warning("watchdog disabled: cannot use \(description)")
        }
        if inherited != nil {
            logger.info("socket-activated: adopting the ws and status sockets; listen and status_listen are not used")
        }
        // Trap SIGHUP before READY, so an early reload cannot kill the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let server = VigilServer(
            configuration: resolved, logger: logger,
            manager: ServiceManagerContext(
                notifier: SystemdNotifier(environment: environment), watchdogInterval: watchdogInterval,
                inheritedSockets: inherited))
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: server),
                    .init(service: ReloadOnHangup(server: server, signals: hangups, load: load)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("vigild stopped: \(error)")
            throw ExitCode(1)
        }
    }

    private func bootstrapLogging(_ settings: VigilSettings, journal: Bool) {
        let format: StderrLogHandler.Format = settings.logFormat == .json ? .json : .text
        let level = Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var stderr = StderrLogHandler(label: label, format: format)
            stderr.logLevel = level
            guard journal else { return stderr }
            var handler = JournalLogHandler(identifier: "vigild", fallback: StderrLogHandler(label: label, format: .text))
            handler.logLevel = level
            return handler
        }
    }

    /// Raises the soft descriptor limit to the hard one and warns when max_connections cannot fit.
    private func checkOpenFileLimit(maxConnections: Int, logger: Logger) {
        guard let limits = OpenFileLimit.raiseToHardLimit() else {
            logger.warning("cannot read RLIMIT_NOFILE: \(String(cString: strerror(errno)))")
            return
        }
        let needed = UInt64(maxConnections) + OpenFileLimit.overhead
        if limits.soft < needed {
            logger.warning(
                "max_connections \(maxConnections) needs about \(needed) file descriptors, but RLIMIT_NOFILE is \(limits.soft) (hard limit \(limits.hard)); accepts will fail beyond about \(limits.soft > OpenFileLimit.overhead ? limits.soft - OpenFileLimit.overhead : 0) connections",
                metadata: ["soft": "\(limits.soft)", "hard": "\(limits.hard)", "needed": "\(needed)"])
        }
    }

    private static func help(_ key: String) -> ArgumentHelp {
        let definition = SettingCatalog.definition(forKey: key)!
        return ArgumentHelp(
            "\(definition.help) (default: \(definition.defaultText); env \(definition.environmentVariable))",
            valueName: key.replacingOccurrences(of: "_", with: "-"))
    }
}
