import ArgumentParser
import FoundationEssentials
import Logging
import ServiceLifecycle
import UnixSignals
import VigilConfig
import VigilServer
import VigilServiceManager
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
        usage: "vigild [--config <config>] [--print-config] [--<setting> <value> …]",
        discussion: """
            Every setting comes from a flag, else a VIGIL_* environment variable, else the config file \
            (--config or VIGIL_CONFIG; YAML or JSON, keys like ping_interval), else its default. \
            Durations take ms, s or m (500ms, 30s, 2m; 0 turns a timer off; at most 1440m); sizes are \
            bytes or take KiB, MiB or GiB; switches take true or false (or yes/no, on/off).

            SETTINGS:

            """ + SettingCatalog.helpText,
        version: "vigild 0.1.0")

    /// Every setting's flag (`--ping-interval 5s` or `--ping-interval=5s`), read with the
    /// catalog: one definition per setting drives the flag, its help, the environment variable
    /// and the file key.
    @Argument(parsing: .allUnrecognized, help: .hidden) var settingArguments: [String] = []

    @Option(help: "Config file (YAML or JSON); also VIGIL_CONFIG.") var config: String?
    @Flag(help: "Print the effective configuration, with the source of each value, and exit.") var printConfig = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configPath = config
        let resolved: ResolvedSettings
        let inherited: InheritedSockets?
        let failpoints: Failpoints
        let load: @Sendable () throws -> ResolvedSettings
        do {
            let flags = try SettingsLoader.flagValues(settingArguments)
            load = { try SettingsLoader.load(flags: flags, environment: environment, configPath: configPath) }
            resolved = try load()
            failpoints = try Failpoints(environment: environment)
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
                StandardError.write(
                    "vigild: log is journal, but nothing accepts connections on \(JournalWriter.socketPath)\n")
                throw ExitCode(2)
            }
            journal = true
        }
        bootstrapLogging(settings, journal: journal)
        let logger = Logger(label: "vigild")
        checkOpenFileLimit(maxConnections: settings.maxConnections, logger: logger)
        if !failpoints.active.isEmpty {
            logger.warning(
                "failpoints switched on, for tests only: \(failpoints.active.map(\.rawValue).sorted().joined(separator: ", ")) (\(Failpoints.environmentVariable))"
            )
        }

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
                inheritedSockets: inherited),
            failpoints: failpoints)
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
            _ = JournalQueue.shared.flush(timeout: .seconds(2))
            throw ExitCode(1)
        }
        // The last close lines may still wait for the journal; a journald that is not draining
        // does not hold the exit up for long (the registry was complete before the drain ended).
        _ = JournalQueue.shared.flush(timeout: .seconds(2))
    }

    private func bootstrapLogging(_ settings: VigilSettings, journal: Bool) {
        let format: StderrLogHandler.Format = settings.logFormat == .json ? .json : .text
        let level = Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var stderr = StderrLogHandler(label: label, format: format)
            stderr.logLevel = level
            guard journal else { return stderr }
            var handler = JournalLogHandler(
                identifier: "vigild", fallback: StderrLogHandler(label: label, format: .text))
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
}
