import NIOCore
import VigilConnection
import VigilFraming
import VigilSupervisor

/// What a monitor target's connection does with messages: runs the target's application round
/// trip (`CommandProbe`), when it has one, and ignores everything else the service sends.
final class TargetSink: MessageSink {
    private let monitor: TargetMonitor
    private var probe: CommandProbe?
    private var timer: Scheduled<Void>?
    private weak var connection: SupervisedConnectionHandler?
    private let clock: ConnectionClock

    init(monitor: TargetMonitor, rules: CommandProbe.Rules?, clock: ConnectionClock) {
        self.monitor = monitor
        self.clock = clock
        self.probe = rules.map { CommandProbe(rules: $0, startingAt: clock.now()) }
    }

    func connectionOpened(_ connection: SupervisedConnectionHandler) {
        self.connection = connection
        guard probe != nil else { return }
        due()
    }

    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        guard message.kind == .text, var probe else { return }
        let text = String(buffer: message.data)
        let reply = probe.received(text, at: clock.now())
        self.probe = probe
        if let reply { monitor.noteReply(reply) }
    }

    func connectionEnded(_ outcome: CloseOutcome, _ connection: SupervisedConnectionHandler) {
        timer?.cancel()
        timer = nil
        probe = nil
    }

    /// Expires late requests, sends the next one when it is time, and sets the timer again.
    private func due() {
        guard var probe, let connection, connection.isOpen, let eventLoop = connection.channel?.eventLoop else {
            return
        }
        let timeoutsBefore = probe.timeouts
        let actions = probe.due(at: clock.now())
        for _ in timeoutsBefore..<probe.timeouts { monitor.noteCommandTimeout() }
        self.probe = probe
        for action in actions {
            switch action {
            case .send(let text):
                connection.send(WebSocketMessage(kind: .text, data: ByteBuffer(string: text)))
            case .giveUp(let reason):
                monitor.noteGivingUp(after: probe.consecutiveTimeouts)
                self.probe = nil
                connection.giveUp(cause: .replyTimeout, reason: reason)
                return
            }
        }
        let wait = probe.nextDeadline - clock.now()
        timer = eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(max(0, wait.inNanoseconds))) { [self] in due()
        }
    }
}

@available(*, unavailable)
extension TargetSink: Sendable {}
