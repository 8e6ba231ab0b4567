import Logging
import NIOConcurrencyHelpers
import NIOCore
import VigilClient
import VigilConfig
import VigilConnection
import VigilFraming
import VigilHost
import VigilRegistry
import VigilSupervisor
import VigilText

/// One monitor target: dials it, holds the connection under the target's heartbeat (and its
/// application round trip), records how each connection ends, and dials again after the
/// backoff `ReconnectBackoff` gives. Everything it does runs on its one event loop; its state
/// sits behind a lock so the status API can read it from its own loop.
///
/// A changed target is a new monitor: the old one is stopped (its connection closed with 1001)
/// and a fresh one started, so a reload never touches the targets it does not change.
final class TargetMonitor: Sendable {
    let target: MonitorTarget
    let eventLoop: any EventLoop
    private let host: ConnectionHost
    private let tls: WebSocketDialer.TLS?
    private let connectTimeout: Duration
    /// permessage-deflate offered on each dial (`compression`), and how vigild compresses.
    private let deflate: (PerMessageDeflate.Configuration, DeflateOptions)?
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    /// What a target is doing.
    enum Phase: String, Sendable {
        /// A dial is under way.
        case connecting
        /// The connection is open.
        case up
        /// The last connection or dial ended badly (abnormal, eof, error, or a failed dial);
        /// the next attempt is scheduled.
        case down
        /// The last connection ended cleanly (normal, going_away); the next attempt is scheduled.
        case backingOff = "backing_off"
        /// Removed from the configuration, or vigild is stopping.
        case stopped
    }

    struct DialError: Sendable {
        var at: Timestamp
        var failure: DialFailure
    }

    struct State: Sendable {
        var phase = Phase.connecting
        var since = Timestamp.now()
        var nextAttemptAt: Timestamp?
        var nextAttemptRule: ReconnectBackoff.Rule?
        var backoff: ReconnectBackoff
        var connection: LiveConnection?
        var channel: (any Channel)?
        var upSince: MonotonicInstant?
        var lastClose: CloseRecord?
        var lastDialError: DialError?
        var attempts: UInt64 = 0
        /// Dial attempts that failed since the last one that connected.
        var consecutiveFailures = 0
        var reconnects: UInt64 = 0
        var lastReply: Duration?
        var commandTimeouts: UInt64 = 0
        var uptime: UptimeWindow
        var pendingAttempt: Scheduled<Void>?
        var stopped = false
    }

    init(
        target: MonitorTarget, eventLoop: any EventLoop, host: ConnectionHost, backoff: ReconnectBackoff,
        connectTimeout: Duration, deflate: (PerMessageDeflate.Configuration, DeflateOptions)?
    ) throws {
        self.deflate = deflate
        self.target = target
        self.eventLoop = eventLoop
        self.host = host
        self.connectTimeout = connectTimeout
        do {
            self.tls = target.url.secure ? try WebSocketDialer.TLS(caFile: target.caFile) : nil
        } catch {
            throw StartupError(
                message: "target \(target.name): cannot use ca_file \(target.caFile ?? "(none)"): \(error)")
        }
        var logger = host.logger
        logger[metadataKey: LogKey.target] = "\(target.name)"
        self.logger = logger
        self.state = NIOLockedValueBox(State(backoff: backoff, uptime: UptimeWindow(startedAt: host.clock.now())))
    }

    // MARK: - Lifecycle

    /// Dials at once.
    func start() {
        host.registry.metrics.targets.add(target: target.name, critical: target.critical)
        eventLoop.execute { self.dial() }
    }

    /// Stops dialing and closes the connection, if any, with 1001 and `reason`.
    func stop(reason: String) {
        let channel = state.withLockedValue { state -> (any Channel)? in
            state.stopped = true
            state.pendingAttempt?.cancel()
            state.pendingAttempt = nil
            state.phase = .stopped
            state.since = .now()
            state.nextAttemptAt = nil
            return state.channel
        }
        channel?.pipeline.fireUserInboundEventTriggered(
            CloseRequest(LocalClose(code: CloseStatus.goingAway, reason: reason, cause: .shutdown)))
    }

    /// Stops and forgets the target's metric series (a reload removed it).
    func remove() {
        stop(reason: "target removed from the configuration")
        host.registry.metrics.targets.remove(target: target.name)
    }

    /// A reload's `reconnect_max` and `reconnect_reset_after`, for the waits from now on (the
    /// count of failures so far stays).
    func adopt(backoff: ReconnectBackoff) {
        state.withLockedValue { state in
            state.backoff.maximum = backoff.maximum
            state.backoff.resetAfter = backoff.resetAfter
        }
    }

    // MARK: - Dialing

    private func dial() {
        let attempt = state.withLockedValue { state -> UInt64? in
            guard !state.stopped else { return nil }
            state.pendingAttempt = nil
            state.attempts += 1
            if state.attempts > 1 { state.reconnects += 1 }
            if state.phase != .connecting {
                state.phase = .connecting
                state.since = .now()
            }
            state.nextAttemptAt = nil
            return state.attempts
        }
        guard let attempt else { return }
        let started = host.clock.now()
        let configuration = SupervisedConnectionHandler.Configuration(
            role: .client, policy: target.supervisionPolicy(global: host.policy), limits: host.limits)
        var headers = target.headers.map { HTTPHeaderField(name: $0.name, value: $0.value) }
        if !headers.contains(where: { $0.name.lowercased() == "user-agent" }) {
            headers.append(HTTPHeaderField(name: "User-Agent", value: "vigild (monitor target \(target.name))"))
        }
        let request = UpgradeRequest(
            url: target.url, subprotocols: target.subprotocol.map { [$0] } ?? [], headers: headers,
            extensions: deflate.map { .deflate($0.0, $0.1, host.deflateStreams) } ?? .none)
        let name = target.name
        WebSocketDialer.dial(
            request, on: eventLoop, timeout: connectTimeout, tls: tls, configuration: configuration,
            wheels: host.wheels,
            makeParts: { [self] channel, answer in
                makeParts(channel: channel, answer: answer)
            }
        ).whenComplete { [self] result in
            switch result {
            case .success(let dialed):
                let elapsed = host.clock.now() - started
                host.registry.metrics.targets.countAttempt(target: name, result: "ok")
                let stillWanted = state.withLockedValue { state -> Bool in
                    guard !state.stopped else { return false }  // removed or changed while dialing
                    state.consecutiveFailures = 0
                    state.phase = .up
                    state.since = .now()
                    state.upSince = host.clock.now()
                    state.uptime.wentUp(at: state.upSince!)
                    return true
                }
                if stillWanted { host.registry.metrics.targets.setUp(target: name, true) }
                logger.notice(
                    "target \(name) up: \(target.url) answered in \(DurationText.setting(elapsed.roundedToMilliseconds)) (attempt \(attempt))",
                    metadata: [
                        LogKey.peer: "\(dialed.channel.remoteAddress?.endpointDescription ?? target.url.hostHeader)"
                    ])
                if !stillWanted {
                    dialed.channel.pipeline.fireUserInboundEventTriggered(CloseRequest(.shutdown))
                }
            case .failure(let error):
                dialFailed(error)
            }
        }
    }

    /// The connection's sink and observer, once the server said 101.
    private func makeParts(channel: any Channel, answer: HandshakeAnswer) -> (
        sink: any MessageSink, observer: any ConnectionObserver
    ) {
        host.channels.add(channel, kind: .target(target))
        let identity = ConnectionIdentity(
            peer: channel.remoteAddress?.endpointDescription ?? target.url.hostHeader, path: target.url.path,
            leg: .target, target: target.name, compression: answer.compression?.headerValue, tls: answer.tls)
        let books = host.openBooks(identity, at: host.clock.now())
        state.withLockedValue { state in
            state.connection = books.connection
            state.channel = channel
        }
        let metrics = host.registry.metrics.targets
        let name = target.name
        books.observer.roundTripMeasured = { metrics.recordRoundTrip(target: name, $0) }
        books.observer.recorded = { [self] record in connectionEnded(record) }
        return (TargetSink(monitor: self, rules: target.command, clock: host.clock), books.observer)
    }

    private func dialFailed(_ error: any Error) {
        let failure = error as? DialFailure ?? .connection(reason: "\(error)")
        host.registry.metrics.targets.countAttempt(target: target.name, result: failure.phase)
        var retryAfter: Duration?
        var status: Int?
        if case .refused(let refusal) = failure {
            status = refusal.status
            retryAfter = refusal.header("retry-after").flatMap { Int($0.filter { !$0.isWhitespace }) }.map {
                .seconds($0)
            }
        }
        let wait = schedule(after: .dialFailed(httpStatus: status, retryAfter: retryAfter), phase: .down) { state in
            state.lastDialError = DialError(at: .now(), failure: failure)
            state.consecutiveFailures += 1
        }
        guard let wait else { return }
        logger.warning(
            "target \(target.name): cannot connect to \(target.url): \(failure); next attempt in \(DurationText.setting(wait.delay.roundedToMilliseconds)) (\(wait.rule.rawValue))",
            metadata: ["phase": "\(failure.phase)"])
    }

    /// The connection's record is stored: dial again after the backoff.
    private func connectionEnded(_ record: CloseRecord) {
        let clean = record.kind == .normal || record.kind == .goingAway
        let wait = schedule(
            after: .closed(code: record.outcome.code, upFor: record.duration), phase: clean ? .backingOff : .down
        ) {
            state in
            state.lastClose = record
            state.connection = nil
            state.channel = nil
            state.uptime.wentDown(at: host.clock.now())
            state.upSince = nil
        }
        guard let wait else { return }  // stopped: the metric belongs to the target's successor, if any
        host.registry.metrics.targets.setUp(target: target.name, false)
        logger.info(
            "target \(target.name): connection \(record.id) ended \(record.kind.rawValue) (\(record.cause.rawValue)); next attempt in \(DurationText.setting(wait.delay.roundedToMilliseconds)) (\(wait.rule.rawValue))"
        )
    }

    /// Updates the state with `update`, then schedules the next dial as the backoff says;
    /// `nil` once stopped.
    private func schedule(
        after ending: ReconnectBackoff.Ending, phase: Phase, _ update: (inout State) -> Void
    ) -> (delay: Duration, rule: ReconnectBackoff.Rule)? {
        state.withLockedValue { state in
            update(&state)
            guard !state.stopped else { return nil }
            var random = SystemRandomNumberGenerator()
            let wait = state.backoff.next(after: ending, using: &random)
            state.phase = phase
            state.since = .now()
            state.nextAttemptAt = Timestamp(
                nanosecondsSinceEpoch: Timestamp.now().nanosecondsSinceEpoch + wait.delay.inNanoseconds)
            state.nextAttemptRule = wait.rule
            state.pendingAttempt = eventLoop.scheduleTask(in: .nanoseconds(wait.delay.inNanoseconds)) { [self] in dial()
            }
            return wait
        }
    }

    // MARK: - From the connection's sink

    func noteReply(_ roundTrip: Duration) {
        host.registry.metrics.targets.recordReply(target: target.name, roundTrip)
        state.withLockedValue { $0.lastReply = roundTrip }
    }

    func noteCommandTimeout() {
        state.withLockedValue { $0.commandTimeouts += 1 }
    }

    func noteGivingUp(after timeouts: Int) {
        logger.warning(
            "target \(target.name): \(timeouts) requests in a row unanswered within \(DurationText.setting(target.command!.replyWithin)); closing as reply_timeout"
        )
    }

    // MARK: - Reports

    /// The target as the status API shows it now.
    func report() -> TargetReport {
        let state = self.state.withLockedValue { $0 }
        let dialError = state.lastDialError.map { error in
            var status: Int?
            if case .refused(let refusal) = error.failure { status = refusal.status }
            return TargetReport.DialError(
                at: error.at, phase: error.failure.phase, message: error.failure.description, httpStatus: status)
        }
        return TargetReport(
            name: target.name, url: target.url.description, critical: target.critical, state: state.phase.rawValue,
            since: state.since,
            nextAttemptAt: state.nextAttemptAt, nextAttemptRule: state.nextAttemptRule?.rawValue,
            connection: state.connection?.snapshot(), lastReply: state.lastReply,
            commandTimeouts: state.commandTimeouts,
            lastClose: state.lastClose, lastDialError: dialError, consecutiveFailures: state.consecutiveFailures,
            attempts: state.attempts, reconnects: state.reconnects,
            uptimeRatio: state.uptime.ratio(at: host.clock.now()))
    }
}

extension Duration {
    /// Whole milliseconds, for log lines.
    var roundedToMilliseconds: Duration { .milliseconds(Int64(inMilliseconds.rounded())) }
}
