import NIOCore
import VigilConnection
import VigilFraming
import VigilSupervisor

/// One load connection's sink and observer: runs an echo loop on demand (one message in
/// flight; the next goes when the echo returns) and counts what the server does to it. The
/// supervised shell answers pings (unless `--no-pong`) and close frames. Lean on purpose:
/// thousands of these share a process.
final class LoadConnection: MessageSink, ConnectionObserver {
    private let stats: LoadStats
    private let answerPings: Bool
    private weak var connection: SupervisedConnectionHandler?
    private var firstUnansweredPing: NIODeadline?
    private var message: WebSocketMessage?
    private var sentAt: NIODeadline?
    /// Paced echo (`--rate`): when each message in flight was due, oldest first (echoes come
    /// back in order), and when the next one is.
    private var due: [NIODeadline] = []
    private var dueIndex = 0
    private var nextDue: NIODeadline?

    init(stats: LoadStats, answerPings: Bool) {
        self.stats = stats
        self.answerPings = answerPings
    }

    /// Starts the echo loop with messages of `size` bytes.
    func startEcho(messageSize size: Int, payload: EchoPayload) {
        guard let connection, let allocator = connection.channel?.allocator else { return }
        message = payload.message(size: size, allocator: allocator)
        sendMessage(on: connection)
    }

    /// Starts a paced echo: a message every `interval` from `start` on, whether or not the
    /// previous echo is back (open loop), each timed from when it was due, so a late event loop
    /// or a slow server shows in the latency instead of lowering the rate.
    func startPacedEcho(
        messageSize size: Int, payload: EchoPayload, every interval: TimeAmount, from start: NIODeadline
    ) {
        guard let connection, let allocator = connection.channel?.allocator else { return }
        message = payload.message(size: size, allocator: allocator)
        nextDue = start
        schedulePacedSend(every: interval)
    }

    private func schedulePacedSend(every interval: TimeAmount) {
        guard let connection, let eventLoop = connection.channel?.eventLoop, let dueAt = nextDue else { return }
        eventLoop.assumeIsolated().scheduleTask(deadline: dueAt) { [weak self] in
            guard let self, let connection = self.connection, let message = self.message,
                self.stats.echoing.load(ordering: .relaxed)
            else { return }
            self.due.append(dueAt)
            connection.send(message)
            self.nextDue = dueAt + interval
            self.schedulePacedSend(every: interval)
        }
    }

    // MARK: - MessageSink

    func connectionOpened(_ connection: SupervisedConnectionHandler) {
        self.connection = connection
    }

    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        if nextDue != nil {
            guard dueIndex < due.count else { return }
            let microseconds = (NIODeadline.now() - due[dueIndex]).nanoseconds / 1000
            dueIndex += 1
            if dueIndex > 1024 {  // drop the answered entries now and then, not on every echo
                due.removeFirst(dueIndex)
                dueIndex = 0
            }
            stats.latency.withLockedValue { _ = $0.record(UInt64(max(microseconds, 0))) }
            stats.echoes.add(1, ordering: .relaxed)
            return
        }
        guard let sentAt else { return }
        let microseconds = (NIODeadline.now() - sentAt).nanoseconds / 1000
        stats.latency.withLockedValue { _ = $0.record(UInt64(max(microseconds, 0))) }
        stats.echoes.add(1, ordering: .relaxed)
        self.sentAt = nil
        if stats.echoing.load(ordering: .relaxed) { sendMessage(on: connection) }
    }

    // MARK: - ConnectionObserver

    func pingReceived(_ payload: ByteBuffer) {
        stats.pings.add(1, ordering: .relaxed)
        if answerPings {
            stats.pongsSent.add(1, ordering: .relaxed)
        } else if firstUnansweredPing == nil {
            firstUnansweredPing = .now()
        }
    }

    func closeFrameReceived(_ payload: ClosePayload) {
        stats.noteClose(code: payload.code)
    }

    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {
        if outcome.initiator == .remote && outcome.code == CloseStatus.abnormalClosure {
            stats.dropped.add(1, ordering: .relaxed)  // no close frame from either end
        }
        // The server ended it: for a peer that stopped ponging, that is the detection.
        if outcome.initiator == .remote, let first = firstUnansweredPing {
            firstUnansweredPing = nil
            let microseconds = (NIODeadline.now() - first).nanoseconds / 1000
            stats.detection.withLockedValue { _ = $0.record(UInt64(max(microseconds, 0))) }
        }
    }

    private func sendMessage(on connection: SupervisedConnectionHandler) {
        guard let message else { return }
        sentAt = .now()
        connection.send(message)
    }
}

@available(*, unavailable)
extension LoadConnection: Sendable {}
