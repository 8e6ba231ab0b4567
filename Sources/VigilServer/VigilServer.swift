import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import VigilConfig
import VigilConnection
import VigilFraming
import VigilHost
import VigilProxy
import VigilRealClient
import VigilRegistry
import VigilServiceManager
import VigilStatus
import VigilSupervisor
import VigilTLS
import VigilTargets
import VigilText

#if canImport(Glibc)
    import Glibc
#endif

/// vigild's server: the WebSocket listener with supervised connections and the status API
/// listener, sharing one registry. A `Service`, so swift-service-lifecycle runs it and turns
/// SIGTERM/SIGINT into a graceful drain; it keeps the service manager (if any) informed.
public final class VigilServer: Service, Sendable, CustomStringConvertible {
    public let registry: ConnectionRegistry
    private let server: ServerContext
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let logger: Logger
    private let startedAt: MonotonicInstant
    private let manager: ServiceManagerContext
    private let link: ServiceManagerLink?
    private let current: NIOLockedValueBox<ResolvedSettings>
    private let phase = Atomic<UInt8>(ServerPhase.starting.rawValue)
    private let listeners = NIOLockedValueBox<(webSocket: (any Channel)?, status: (any Channel)?)>((nil, nil))
    private let statusListener = NIOLockedValueBox<StatusListener?>(nil)
    private let drained = NIOLockedValueBox<Bool>(false)
    /// The monitor targets vigild dials and holds.
    private let targets: MonitorTargets

    /// - Parameters:
    ///   - group: event loops to run on; by default one per core, owned and shut down by the server.
    ///   - manager: what the service manager passed (notification socket, watchdog, sockets).
    ///   - clock: what accepted connections are supervised and timed by; the system's, or an
    ///     `EmbeddedEventLoop`'s where a test or fuzz target drives the connection pipeline.
    ///   - failpoints: faults a black-box test switches on (`VIGILD_FAILPOINTS`); none otherwise.
    public init(
        configuration: ResolvedSettings, logger: Logger, group: (any EventLoopGroup)? = nil,
        manager: ServiceManagerContext = .init(), clock: ConnectionClock = .system, failpoints: Failpoints = .none
    ) {
        let now = clock.now()
        let settings = configuration.settings
        self.current = NIOLockedValueBox(configuration)
        self.registry = ConnectionRegistry(
            maxConnections: settings.maxConnections, closeHistory: settings.closeHistory, now: now)
        let host = ConnectionHost(
            registry: registry, logger: logger, clock: clock,
            limits: FramingLimits(maxFrameSize: settings.maxFrame, maxMessageSize: settings.maxMessage),
            policy: settings.supervisionPolicy)
        self.server = ServerContext(
            settings: settings, host: host,
            descriptorBudget: Self.descriptorBudget(statusConnections: settings.statusMaxConnections),
            failpoints: failpoints)
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.targets = MonitorTargets(host: host, group: self.group)
        self.ownsGroup = group == nil
        self.logger = logger
        self.startedAt = now
        self.manager = manager
        self.link = manager.notifier.map { ServiceManagerLink(notifier: $0, logger: logger) }
    }

    /// The effective configuration (a reload changes its reloadable part).
    public var configuration: ResolvedSettings { current.withLockedValue { $0 } }

    /// Where the listeners are bound (the real ports when port 0 was configured).
    public var webSocketAddress: SocketAddress? { listeners.withLockedValue { $0.webSocket?.localAddress } }
    public var statusAddress: SocketAddress? { listeners.withLockedValue { $0.status?.localAddress } }

    /// `serving 12 connections; last 60 s: 3 normal, 1 eof`
    public var statusLine: String {
        StatusLine.text(
            active: registry.activeCount, lastMinute: registry.summary(at: server.host.clock.now()).lastMinuteByKind)
    }

    /// How ServiceLifecycle names this service in its logs. Without it, it describes the server
    /// by reflecting over every stored property (Mirror), which was a sixth of start-up.
    public var description: String { "VigilServer" }

    /// Binds (or adopts) both listeners; the server is ready (and `/readyz` says so) when this returns.
    public func start() async throws {
        let settings = server.settings
        let routes = try RouteTable.make(settings, running: nil, host: server.host)
        routes.commit(replacing: nil)
        server.replaceRoutes(routes)
        do {
            let tls = try ListenerTLS.load(settings)
            server.replaceListenerTLS(tls)
            if let tls { registry.noteTLSCertificates(tls.certificates.map { ($0.certFile, $0.notValidAfter) }) }
        } catch {
            throw StartupError(message: "cannot serve TLS: \(error)")
        }
        let inherited = manager.inheritedSockets
        let statusListener = StatusListener(
            router: statusRouter(), settings: settings, access: try StatusAccess.make(settings))
        self.statusListener.withLockedValue { $0 = statusListener }
        let status: any Channel
        let webSocket: (any Channel)?
        do {
            status = try await listen(
                settings.statusListen, inherited: inherited?.status, what: "status API listener"
            ) { try await statusListener.listenTCP(settings.statusListen, inherited: inherited?.status) }
            listeners.withLockedValue { $0.status = status }
            try Self.checkExposure(of: status, settings: settings)
            if let path = settings.statusSocket {
                _ = try await statusListener.listenUnixSocket(path)
            }
            if let address = settings.listen {
                webSocket = try await listen(address, inherited: inherited?.webSocket, what: "WebSocket listener") {
                    let bootstrap = webSocketBootstrap()
                    if let inherited { return try await bootstrap.withBoundSocket(inherited.webSocket).get() }
                    return try await bootstrap.bind(host: address.host, port: address.port).get()
                }
            } else {
                webSocket = nil  // listen: none, a pure monitor
            }
            try targets.reconcile(settings)
        } catch {
            targets.stopAll()
            await statusListener.shutdown()
            throw error
        }
        listeners.withLockedValue { $0.webSocket = webSocket }
        phase.store(ServerPhase.ready.rawValue, ordering: .releasing)
        let tls = server.listenerTLS()
        let wsURL =
            webSocket.map {
                "\(tls == nil ? "ws" : "wss")://\($0.localAddress?.endpointDescription ?? "?")\(settings.mode == .proxy || !settings.routes.isEmpty ? "/" : settings.path)"
            } ?? "none"
        let statusURL =
            "http://\(status.localAddress?.endpointDescription ?? "?")"
            + (settings.statusSocket.map { " status_socket=\($0)" } ?? "")
        // Like close lines, the ready line is written whatever the log level: it says where vigild listens.
        var lifecycle = logger
        if lifecycle.logLevel > .notice { lifecycle.logLevel = .notice }
        let upstream =
            (settings.upstream.map { " upstream=\($0)" } ?? "")
            + (settings.routes.isEmpty ? "" : " routes=\(settings.routes.map(\.name).joined(separator: ","))")
            + (settings.targets.isEmpty ? "" : " targets=\(settings.targets.count)")
        lifecycle.notice(
            "vigild ready ws=\(wsURL) status=\(statusURL)\(upstream)",
            metadata: [
                "mode": "\(settings.routes.isEmpty ? settings.mode.rawValue : "routes")",
                "socket_activated": "\(inherited != nil)",
            ])
        if let tls { lifecycle.notice("tls: \(Self.describe(tls))") }
    }

    /// `default /etc/vigil/tls.crt (for a.example.com) until 2027-03-01 00:00:00 UTC; …`: what
    /// the listener serves, for the ready line and a reload's report.
    static func describe(_ tls: ListenerTLS) -> String {
        tls.certificates.map { loaded in
            let chosen = loaded.serverNames.isEmpty ? "default" : loaded.serverNames.joined(separator: ",")
            return
                "\(chosen) \(loaded.certFile) (for \(loaded.certifiedNames)) until \(TLSNames.date(time_t(loaded.notValidAfter)))"
        }.joined(separator: "; ")
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT under a ServiceGroup), then drains.
    /// With a service manager: READY once listening, STATUS updates, WATCHDOG while every event
    /// loop turns (also during the drain), STOPPING as shutdown begins.
    public func run() async throws {
        if phase.load(ordering: .acquiring) == ServerPhase.starting.rawValue {
            try await start()
        }
        let liveness = manager.watchdogInterval.map {
            EventLoopLiveness(group: group, beatEvery: WatchdogGate(interval: $0).beatPeriod)
        }
        link?.send(.ready(mainPID: getpid(), status: statusLine))
        await withTaskGroup(of: Void.self) { tasks in
            if let link {
                tasks.addTask { await link.runStatusUpdates { [self] in statusLine } }
                if let interval = manager.watchdogInterval, let liveness {
                    tasks.addTask { await link.runWatchdog(gate: WatchdogGate(interval: interval), liveness: liveness) }
                }
            }
            try? await gracefulShutdown()
            targets.stopAll()
            link?.send(
                .stopping(status: "stopping: closing \(registry.activeCount) connections with 1001", needs: drainLimit))
            await drain()
            tasks.cancelAll()
        }
        liveness?.stop()
        await releaseEventLoops()
    }

    /// The longest a drain may take: the drain window, the close timeout, a second for what
    /// remains, and two for the process to exit. Told to the service manager as the stop begins.
    private var drainLimit: Duration {
        let settings = configuration.settings
        return settings.drainWindow + settings.closeTimeout + .seconds(3)
    }

    /// Drains (see `drain()`) and releases the event loops the server owns.
    public func shutdown() async {
        await drain()
        await releaseEventLoops()
    }

    /// Stops accepting, sends 1001 to every connection, waits up to the close timeout (plus a
    /// second) for the close handshakes, closes what remains, then stops the listeners.
    /// Every connection's close is recorded before this returns.
    public func drain() async {
        let alreadyDrained = drained.withLockedValue { drained in
            defer { drained = true }
            return drained
        }
        guard !alreadyDrained else { return }
        phase.store(ServerPhase.draining.rawValue, ordering: .releasing)
        targets.stopAll()  // no more dials; their connections get their 1001 with the others
        let webSocket = listeners.withLockedValue { $0.webSocket }
        try? await webSocket?.close()
        let channels = server.host.channels
        let open = channels.count
        let window = current.withLockedValue { $0.settings.drainWindow }
        let spread = window > .zero ? " over \(DurationText.setting(window))" : ""
        logger.notice(
            "shutting down: closing \(open) connections with 1001\(spread)", metadata: ["connections": "\(open)"])
        if window > .zero {
            // Each connection's 1001 at a random moment of the window, on its own event loop.
            for channel in channels.all {
                let delay = TimeAmount.nanoseconds(Int64.random(in: 0..<window.inNanoseconds))
                channel.eventLoop.scheduleTask(in: delay) {
                    channel.pipeline.fireUserInboundEventTriggered(CloseRequest(.shutdown))
                }
            }
        } else {
            channels.broadcast(CloseRequest(.shutdown))
        }
        let closeTimeout = server.host.policy.closeTimeout
        let drainLimit = ContinuousClock.now + window + closeTimeout + .seconds(1)
        while channels.count > 0 && ContinuousClock.now < drainLimit {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for channel in channels.all {
            try? await channel.close()
        }
        try? await statusListener.withLockedValue({ $0 })?.close()
        logger.notice("stopped", metadata: ["closes_total": "\(registry.summary(at: server.host.clock.now()).total)"])
    }

    private func releaseEventLoops() async {
        await statusListener.withLockedValue { $0 }?.shutdown()
        if ownsGroup {
            try? await group.shutdownGracefully()
        }
    }

    // MARK: - Reload

    /// What a reload changed.
    public struct ReloadReport: Sendable {
        /// Keys whose new values now apply, with old and new values.
        public var applied: [(key: String, old: String, new: String)]
        /// Keys that changed but keep their running values until a restart.
        public var needRestart: [(key: String, old: String, new: String)]
    }

    /// Re-reads the configuration with `load` and applies what can change at run time (timer
    /// values, to live and new connections) without dropping any connection. Tells the service
    /// manager RELOADING=1 (with MONOTONIC_USEC) first and READY=1 after, also when loading
    /// fails, in which case the running configuration stays and the error is logged.
    @discardableResult
    public func reload(_ load: () throws -> ResolvedSettings) -> Result<ReloadReport, any Error> {
        // MONOTONIC_USEC is CLOCK_MONOTONIC's, whatever clock the connections are timed by.
        link?.send(
            .reloading(
                monotonicMicroseconds: UInt64(ConnectionClock.system.now().nanoseconds / 1000),
                status: "reloading configuration"))
        defer { link?.send(.ready(mainPID: getpid(), status: statusLine)) }
        let reload: SettingsReload
        let routes: RouteTable
        let access: StatusAccess
        let targetChanges: MonitorTargets.Changes
        let tls: ListenerTLS?
        do {
            reload = SettingsReload(running: configuration, fresh: try load())
            if reload.updated.settings.routes.isEmpty != configuration.settings.routes.isEmpty {
                // The single route is mode and path, which only a restart changes.
                throw StartupError(
                    message:
                        "routes cannot be \(configuration.settings.routes.isEmpty ? "added to" : "taken from") the config file by a reload: the single route without them is mode and path, which need a restart; restart vigild for that"
                )
            }
            routes = try RouteTable.make(reload.updated.settings, running: server.routes, host: server.host)
            access = try StatusAccess.make(reload.updated.settings)
            tls = try reloadedTLS(reload.updated.settings)
            // Targets are reloadable as a whole list: new ones start, removed ones stop, changed
            // ones restart, the others keep their connections.
            targetChanges = try targets.reconcile(reload.updated.settings)
        } catch {
            logger.error("reload failed; the running configuration stays: \(error)")
            return .failure(error)
        }
        current.withLockedValue { $0 = reload.updated }
        var report = ReloadReport(applied: reload.applied, needRestart: reload.needRestart)
        if let tls {
            // Re-read at every reload, changed or not: rotating a certificate is a new file at the same path.
            server.replaceListenerTLS(tls)
            registry.noteTLSCertificates(tls.certificates.map { ($0.certFile, $0.notValidAfter) })
            report.applied.insert(("tls", "", Self.describe(tls)), at: 0)
        }
        let running = server.routes
        routes.commit(replacing: running)
        server.replaceRoutes(routes)
        if let change = Self.describeChanges(from: running, to: routes) {
            report.applied.insert(("routes", "", change), at: 0)
        }
        if !targetChanges.isEmpty {
            let describe = { (what: String, names: [String]) in
                names.isEmpty ? nil : "\(what) \(names.joined(separator: " "))"
            }
            let text = [
                describe("added", targetChanges.added), describe("removed", targetChanges.removed),
                describe("changed", targetChanges.changed),
            ].compactMap { $0 }.joined(separator: "; ")
            report.applied.insert(("targets", "", text), at: 0)
        }
        let settings = reload.updated.settings
        let policy = settings.supervisionPolicy
        server.host.policy = policy
        server.replaceTrustedProxies(settings.trustedProxies)
        statusListener.withLockedValue { $0 }?.replaceAccess(access)
        // Live connections take their route's new heartbeat; those of a route that is gone
        // keep the one they had.
        server.host.channels.broadcast { kind in
            switch kind {
            case .accepted: PolicyUpdate(policy)
            case .client(let route): routes.route(named: route).map { PolicyUpdate($0.policy) }
            case .upstream(let route, _, _): routes.route(named: route).map { PolicyUpdate($0.upstreamPolicy) }
            case .target(let target): PolicyUpdate(target.supervisionPolicy(global: policy))
            }
        }
        drainMembers(of: routes, over: settings.drainWindow)
        let changes = report.applied.map {
            ["targets", "tls", "routes"].contains($0.key) ? "\($0.key): \($0.new)" : "\($0.key) \($0.old) → \($0.new)"
        }.joined(separator: ", ")
        logger.notice(
            "configuration reloaded: \(changes.isEmpty ? "nothing to change" : changes)",
            metadata: ["connections": "\(registry.activeCount)"])
        for change in report.needRestart {
            logger.warning(
                "\(change.key) changed from \(change.old) to \(change.new) in the configuration, but takes effect only after a restart"
            )
        }
        return .success(report)
    }

    /// `added chat; removed feed; changed echo`: what a reload did to the routes, `nil` for nothing.
    static func describeChanges(from running: RouteTable, to new: RouteTable) -> String? {
        let old = Dictionary(running.routes.map { ($0.name, $0.entry) }, uniquingKeysWith: { first, _ in first })
        let added = new.routes.filter { old[$0.name] == nil }.map(\.name)
        let changed = new.routes.filter { route in old[route.name].map { $0 != route.entry } ?? false }.map(\.name)
        let removed = running.routes.filter { new.route(named: $0.name) == nil }.map(\.name)
        let text = [("added", added), ("removed", removed), ("changed", changed)].compactMap { what, names in
            names.isEmpty ? nil : "\(what) \(names.joined(separator: " "))"
        }.joined(separator: "; ")
        return text.isEmpty ? nil : text
    }

    /// Pool members marked `drain`: their live pairs are closed, 1001 to the client, each at a
    /// random moment of `window` (at once without one). New pairs never go to them. A member
    /// is its name and URL: a default name is a position in the list.
    private func drainMembers(of routes: RouteTable, over window: Duration) {
        var drained: [String: [PoolMember]] = [:]
        for route in routes.routes {
            let members = route.entry.pool.filter(\.drain)
            if !members.isEmpty { drained[route.name] = members }
        }
        guard !drained.isEmpty else { return }
        let channels = server.host.channels.channels { kind in
            guard case .upstream(let route, let member, let url) = kind else { return false }
            return drained[route]?.contains { $0.name == member && $0.url == url } ?? false
        }
        for (channel, kind) in channels {
            guard case .upstream(let route, let member, _) = kind else { continue }
            let close = CloseRequest(
                LocalClose(
                    code: CloseStatus.goingAway, reason: "upstream \(member) of route \(route) is drained",
                    cause: .shutdown))
            let delay = window > .zero ? TimeAmount.nanoseconds(Int64.random(in: 0..<window.inNanoseconds)) : .zero
            channel.eventLoop.scheduleTask(in: delay) { channel.pipeline.fireUserInboundEventTriggered(close) }
        }
        if !channels.isEmpty {
            let spread = window > .zero ? " over \(DurationText.setting(window))" : ""
            logger.notice("draining \(channels.count) pairs of drained upstreams\(spread)")
        }
    }

    /// The listener's TLS from the reloaded settings' files, read anew. A certificate that
    /// cannot be served keeps what runs from the same files (logged and counted, the rest of the
    /// reload applies); a new one that cannot be served fails the reload (the running
    /// certificates stay; counted); so does turning TLS on or off, which would change the
    /// listener's scheme under its clients.
    private func reloadedTLS(_ settings: VigilSettings) throws -> ListenerTLS? {
        let running = server.listenerTLS()
        guard settings.tls == (running != nil) else {
            throw StartupError(
                message:
                    "TLS on the WebSocket listener cannot be turned \(running != nil ? "off" : "on") by a reload (tls_cert_file, tls_certificates); restart vigild for that"
            )
        }
        do {
            let (tls, kept) = try ListenerTLS.load(settings, keeping: running)
            for problem in kept {
                registry.noteTLSCertificateReloadFailure()
                logger.error("reload: the running certificate stays: \(problem)")
            }
            return tls
        } catch {
            registry.noteTLSCertificateReloadFailure()
            throw StartupError(message: "the running TLS certificates stay: \(error)")
        }
    }

    // MARK: - Bootstraps

    private func webSocketBootstrap() -> ServerBootstrap {
        let maxBacklog = server.settings.maxBacklog
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                AcceptPause.install(on: channel).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(AcceptThrottle())
                }
            }
            .childChannelOption(.writeBufferWaterMark, value: .init(low: maxBacklog / 2, high: maxBacklog))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try installConnectionPipeline(on: channel) }
            }
    }

    /// Sets up an accepted TCP connection on the WebSocket listener: HTTP handshake handling,
    /// the upgrader and the handshake guard; after the upgrade, the framing core and the
    /// supervised connection handler. Public so a fuzzer can drive the whole per-connection
    /// pipeline on an `EmbeddedChannel`; call on the channel's event loop.
    public func installConnectionPipeline(on channel: any Channel) throws {
        let proxyProtocol = server.settings.proxyProtocol
        let origin = ClientOrigin(
            remote: channel.remoteAddress, trusted: server.trustedProxies(), proxyProtocol: proxyProtocol != .off)
        let logger = origin.logger(server.host.logger)
        do {
            let channels = server.host.channels
            let gate = server.gate
            let slot = ConnectionSlot(registry: registry)
            let counted = AddressCount(gate: gate)
            // Everything this connection holds is given back here, once, when its socket closes.
            channels.add(channel, kind: .accepted) {
                counted.release()
                slot.release()
            }
            // The client is the TCP peer unless a trusted balancer may still name another: then
            // the per-IP limit waits for the PROXY header or the request head.
            let known = origin.settled
            let refusal: HandshakeRejection?
            switch gate.decide(address: known ? origin.address : nil, openSockets: channels.count) {
            case .drop:
                registry.noteRejectedHandshake(.descriptors)
                gate.descriptorLog.log(
                    logger, level: .warning,
                    "closing an accepted connection unanswered: \(channels.count) sockets open, the most RLIMIT_NOFILE leaves after its reserve for the status API and the service manager is \(gate.descriptorBudget ?? 0)",
                    metadata: ["sockets": "\(channels.count)"], on: channel.eventLoop)
                channel.close(promise: nil)
                return
            case .refuse(let rejection):
                refusal = rejection
            case .admit:
                refusal = nil
            }
            if known, let address = origin.address { counted.counted(address) }
            let pipeline = channel.pipeline.syncOperations
            let eventLoop = channel.eventLoop
            if proxyProtocol != .off {
                try pipeline.addHandler(
                    proxyHeaderReader(proxyProtocol, origin: origin, counted: counted, on: eventLoop))
            }
            let tls = try server.listenerTLS().map { listenerTLS in
                let session = ListenerTLSSession { [server] failure in
                    server.registry.noteFailedTLSHandshake(failure.reason)
                    // A client that hangs up mid-handshake is what a TCP health check does: quiet,
                    // as on a plain listener.
                    server.tlsLog.log(
                        origin.logger(server.host.logger), level: failure.reason == .closed ? .debug : .info,
                        "TLS handshake failed: \(failure.detail)", metadata: ["reason": "\(failure.reason.rawValue)"],
                        on: eventLoop)
                }
                try listenerTLS.install(on: pipeline, session: session)
                return session
            }
            let preview = RequestPreview()
            let handshake = HandshakeHandler(
                server: server, preview: preview, origin: origin, admissionRefusal: refusal, tls: tls)
            let upgrader = WebSocketUpgrader(server: server, handshake: handshake, slot: slot, counted: counted)
            try pipeline.addHandler(preview)  // in front of the HTTP decoder
            // Parse errors are answered by HandshakeHandler, with a body and a count.
            try pipeline.configureHTTPServerPipeline(
                withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
                withErrorHandling: false)
            try pipeline.addHandler(handshake)
        } catch {
            logger.warning("cannot set up an accepted connection: \(error)")
            throw error
        }
    }

    /// The handler that reads a connection's PROXY header first (`proxy_protocol`): the source
    /// it names is believed from a trusted peer only, counted by what it was, and once the
    /// client is known it is counted under its address (`max_connections_per_ip`); a connection
    /// that does not begin with one is refused (`proxy_protocol`), logged rate-limited.
    private func proxyHeaderReader(
        _ setting: ProxyProtocolSetting, origin: ClientOrigin, counted: AddressCount, on eventLoop: any EventLoop
    ) -> ProxyHeaderReader {
        let versions: Set<ProxyProtocolHeader.Version> =
            switch setting {
            case .v1: [.v1]
            case .v2: [.v2]
            default: [.v1, .v2]
            }
        return ProxyHeaderReader(
            accepting: versions,
            received: { [server] header in
                let result = origin.received(header)
                server.registry.noteProxyHeader(result.rawValue)
                if result == .untrusted {
                    server.untrustedLog.log(origin.logger(server.host.logger), address: origin.tcpAddress ?? "unknown")
                    {
                        suppressed in
                        "ignoring the PROXY header from \(origin.tcpPeer) (it names \(header.source?.description ?? "no client")): the peer is not in trusted_proxies"
                            + (suppressed > 0 ? " (\(suppressed) more since the last line)" : "")
                            + "; logged once a minute per address"
                    }
                }
                if origin.settled, !counted.isCounted, let address = origin.address {
                    origin.refusal = counted.count(address)
                }
            },
            refused: { [server] why in
                origin.refusedProxyHeader = true
                server.registry.noteRejectedHandshake(.proxyProtocol)
                server.handshakeLog.log(
                    origin.logger(server.host.logger), level: .info, "rejected connection: \(why) (proxy_protocol)",
                    metadata: ["reason": "proxy_protocol"], on: eventLoop)
            })
    }

    /// Sockets the WebSocket side may hold: the soft RLIMIT_NOFILE less a reserve for what must
    /// keep working when connections fill it (status API connections, notifications, the
    /// journal, event loop descriptors): 64 + `status_max_connections`, but never more than
    /// half of a small limit. `nil` when the limit cannot be read.
    static func descriptorBudget(statusConnections: Int) -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        let soft = Int(clamping: limit.rlim_cur)
        let reserve = min(Int(OpenFileLimit.overhead) + statusConnections, soft / 2)
        return max(soft - reserve, 1)
    }

    private func statusRouter() -> StatusRouter {
        let gate = server.gate
        // The listener lives in this server; its router must not keep the server alive (a cycle
        // that outlives shutdown: LeakSanitizer reports every server a process ever ran).
        return StatusRouter(
            registry: registry, startedAt: startedAt, clock: server.host.clock,
            configuration: { [current] in current.withLockedValue { $0 } },
            phase: { [weak self] in
                self.flatMap { ServerPhase(rawValue: $0.phase.load(ordering: .acquiring)) } ?? .draining
            },
            pendingHandshakes: { gate.pendingCount },
            targets: { [targets] in targets.reports() },
            routes: { [server] in server.routes.reports })
    }

    /// The settings refuse a `status_listen` that is not loopback without a token; an inherited
    /// socket (socket activation) is checked here, where its address is known.
    private static func checkExposure(of status: any Channel, settings: VigilSettings) throws {
        guard settings.statusTokenFile == nil, !settings.statusInsecure, let address = status.localAddress,
            address.protocol != .unix, let ip = address.ipAddress
        else { return }
        guard !ListenAddress(host: ip, port: 0).isLoopback else { return }
        throw StartupError(
            message:
                "the status API listens on \(address.endpointDescription), which is not a loopback address, so anyone who can reach it could read every connection; set status_token_file (a bearer token for all but \(StatusOpenEndpoints.text)), or status_insecure: true to serve it openly anyway"
        )
    }

    /// Runs `bind` (which binds `address`, or adopts `inherited`, a socket-activated
    /// descriptor), then adds the accept error logger; failures worded for the operator.
    private func listen(
        _ address: ListenAddress, inherited: Int32?, what: String, bind: () async throws -> any Channel
    ) async throws -> any Channel {
        do {
            let channel = try await bind()
            // Last in the listener's pipeline, behind NIO's accept handler, it sees both failed
            // accepts and accepted connections whose setup failed.
            let logger = self.logger
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(AcceptErrorLogger(logger: logger, listener: what))
            }.get()
            return channel
        } catch {
            let place = inherited.map { "the inherited socket (fd \($0))" } ?? "\(address)"
            throw StartupError(
                message: "cannot \(inherited == nil ? "bind" : "adopt") the \(what) on \(place): \(error)")
        }
    }
}
