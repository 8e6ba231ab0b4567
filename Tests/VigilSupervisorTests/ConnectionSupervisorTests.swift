import Testing

@testable import VigilSupervisor

/// A manual clock: tests move time explicitly and stamp every event with it.
struct ManualClock {
    var now = MonotonicInstant(nanoseconds: 1_000_000_000)
    mutating func advance(_ duration: Duration) { now = now + duration }
}

/// One supervised connection driven by a manual clock, collecting every record it produces.
struct Harness {
    var clock = ManualClock()
    var supervisor: ConnectionSupervisor
    var records: [CloseOutcome] = []

    init(policy: SupervisionPolicy = SupervisionPolicy()) {
        supervisor = ConnectionSupervisor(policy: policy, openedAt: clock.now)
    }

    @discardableResult
    mutating func send(_ event: SupervisorEvent) -> SupervisorActions {
        let actions = supervisor.handle(event, at: clock.now)
        if let record = actions.record { records.append(record) }
        return actions
    }

    /// Advances to the armed deadline and fires the timer, as the NIO shell does.
    @discardableResult
    mutating func fireTimer() -> SupervisorActions {
        guard let deadline = supervisor.nextDeadline else {
            Issue.record("no timer armed")
            return .none
        }
        if deadline > clock.now { clock.now = deadline }
        return send(.timerFired)
    }

    mutating func advance(_ duration: Duration) { clock.advance(duration) }
}

let defaults = SupervisionPolicy()

@Suite("Close classification: every row of the table")
struct CloseTableTests {
    @Test("peer close 1000 → normal/peer_close/peer, clean, echoed")
    func peerNormal() {
        var h = Harness()
        let actions = h.send(.closeReceived(code: 1000, reason: "bye"))
        #expect(actions.record == CloseOutcome(kind: .normal, code: 1000, cause: .peerClose, initiator: .peer, clean: true, reason: "bye"))
        #expect(actions.sendClose == OutgoingClose(code: 1000, reason: ""))
        #expect(actions.closeTransport)
    }

    @Test("peer close without status → normal/1005, answered with an empty close")
    func peerNoStatus() {
        var h = Harness()
        let actions = h.send(.closeReceived(code: nil, reason: ""))
        #expect(actions.record?.kind == .normal)
        #expect(actions.record?.code == 1005)
        #expect(actions.sendClose == OutgoingClose(code: nil, reason: ""))
    }

    @Test("peer close 1001 → going_away")
    func peerGoingAway() {
        var h = Harness()
        #expect(h.send(.closeReceived(code: 1001, reason: "")).record?.kind == .goingAway)
    }

    @Test("peer close with another valid status → error with that code", arguments: [1002, 1003, 1007, 1011, 1014, 3000, 4999] as [UInt16])
    func peerError(code: UInt16) {
        var h = Harness()
        let record = h.send(.closeReceived(code: code, reason: "x")).record
        #expect(record == CloseOutcome(kind: .error, code: code, cause: .peerClose, initiator: .peer, clean: true, reason: "x"))
    }

    @Test("FIN between frames → eof/1006/eof/peer")
    func eof() {
        var h = Harness()
        let actions = h.send(.inputEnded(midFrame: false))
        #expect(actions.record == CloseOutcome(kind: .eof, code: 1006, cause: .eof, initiator: .peer, clean: false, reason: ""))
        #expect(actions.sendClose == nil)
        #expect(actions.closeTransport)
    }

    @Test("FIN mid-frame → abnormal/truncated_frame")
    func truncated() {
        var h = Harness()
        #expect(h.send(.inputEnded(midFrame: true)).record == .abnormal(.truncatedFrame, initiator: .peer))
        #expect(h.records.first?.kind == .abnormal)
    }

    @Test("reset or read error → abnormal/reset")
    func reset() {
        var h = Harness()
        #expect(h.send(.transportFailed).record == CloseOutcome(kind: .abnormal, code: 1006, cause: .reset, initiator: .peer, clean: false, reason: ""))
    }

    @Test("no pong within T → abnormal/pong_timeout/server, close frame sent, no waiting")
    func pongTimeout() {
        var h = Harness()
        let ping = h.fireTimer()
        #expect(ping.sendPing != nil)
        #expect(h.clock.now == MonotonicInstant(nanoseconds: 1_000_000_000) + .seconds(30))
        let end = h.fireTimer()
        #expect(h.clock.now == MonotonicInstant(nanoseconds: 1_000_000_000) + .seconds(40))
        #expect(end.record == CloseOutcome(kind: .abnormal, code: 1006, cause: .pongTimeout, initiator: .server, clean: false, reason: ""))
        #expect(end.sendClose?.code == 1008)
        #expect(end.closeTransport)
        #expect(h.supervisor.nextDeadline == nil)
    }

    @Test("no frame within R → abnormal/read_deadline/server")
    func readDeadline() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .zero, readDeadline: .seconds(5)))
        h.advance(.seconds(3))
        h.send(.frameReceived)
        // The timer armed at open+5s fires early: the deadline moved, nothing happens.
        h.clock.now = MonotonicInstant(nanoseconds: 1_000_000_000) + .seconds(5)
        #expect(h.send(.timerFired) == .none)
        #expect(h.supervisor.nextDeadline == MonotonicInstant(nanoseconds: 1_000_000_000) + .seconds(8))
        let end = h.fireTimer()
        #expect(end.record?.cause == .readDeadline)
        #expect(end.record?.kind == .abnormal)
        #expect(end.record?.initiator == .server)
        #expect(end.sendClose != nil)
    }

    @Test("protocol violations → error with 1002/1007/1009, server-initiated, clean when answered",
          arguments: [(CloseCause.protocolError, 1002), (.invalidUTF8, 1007), (.messageTooBig, 1009)] as [(CloseCause, UInt16)])
    func violation(cause: CloseCause, code: UInt16) {
        var h = Harness()
        let start = h.send(.protocolViolation(ProtocolViolation(cause: cause, detail: "bad", aftermath: .awaitReply)))
        #expect(start.sendClose == OutgoingClose(code: code, reason: "bad"))
        #expect(start.record == nil)
        #expect(!start.closeTransport)
        #expect(!h.supervisor.isOpen)
        h.advance(.milliseconds(20))
        let end = h.send(.closeReceived(code: code, reason: ""))
        #expect(end.record == CloseOutcome(kind: .error, code: code, cause: cause, initiator: .server, clean: true, reason: "bad"))
        #expect(end.sendClose == nil, "the handshake is complete: no second close frame")
        #expect(end.closeTransport)
    }

    @Test("violation unanswered within the close timeout → clean false")
    func violationUnanswered() {
        var h = Harness()
        h.send(.protocolViolation(ProtocolViolation(cause: .protocolError, detail: "unmasked frame", aftermath: .awaitReply)))
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(5))
        let end = h.fireTimer()
        #expect(end.record == CloseOutcome(kind: .error, code: 1002, cause: .protocolError, initiator: .server, clean: false, reason: "unmasked frame"))
    }

    @Test("violation that broke framing → close at once, clean false")
    func violationFramingLost() {
        var h = Harness()
        let actions = h.send(.protocolViolation(ProtocolViolation(cause: .messageTooBig, detail: "frame too big", aftermath: .framingLost)))
        #expect(actions.sendClose?.code == 1009)
        #expect(actions.record == CloseOutcome(kind: .error, code: 1009, cause: .messageTooBig, initiator: .server, clean: false, reason: "frame too big"))
        #expect(actions.closeTransport)
    }

    @Test("a violation in the peer's own close frame: vigild's close answers it → clean, closed at once")
    func violationInPeerClose() {
        var h = Harness()
        let actions = h.send(.protocolViolation(ProtocolViolation(cause: .protocolError, detail: "invalid close code 1005", aftermath: .peerAlreadyClosing)))
        #expect(actions.sendClose == OutgoingClose(code: 1002, reason: "invalid close code 1005"))
        #expect(actions.record == CloseOutcome(kind: .error, code: 1002, cause: .protocolError, initiator: .server, clean: true, reason: "invalid close code 1005"))
        #expect(actions.closeTransport)
    }

    @Test("peer FIN while vigild waits for the close reply → status sent, clean false")
    func violationThenEOF() {
        var h = Harness()
        h.send(.protocolViolation(ProtocolViolation(cause: .invalidUTF8, detail: "x", aftermath: .awaitReply)))
        let end = h.send(.inputEnded(midFrame: false))
        #expect(end.record?.code == 1007)
        #expect(end.record?.cause == .invalidUTF8)
        #expect(end.record?.clean == false)
    }

    @Test("outbound backlog over the limit → abnormal/slow_consumer, no close frame")
    func slowConsumer() {
        var h = Harness()
        let actions = h.send(.backlogExceeded)
        #expect(actions.record == CloseOutcome(kind: .abnormal, code: 1006, cause: .slowConsumer, initiator: .server, clean: false, reason: ""))
        #expect(actions.sendClose == nil)
        #expect(actions.closeTransport)
    }

    @Test("shutdown → going_away/1001/shutdown/server; clean when the peer answers")
    func shutdownAnswered() {
        var h = Harness()
        let start = h.send(.shutdownRequested)
        #expect(start.sendClose?.code == 1001)
        let end = h.send(.closeReceived(code: 1001, reason: ""))
        #expect(end.record == CloseOutcome(kind: .goingAway, code: 1001, cause: .shutdown, initiator: .server, clean: true, reason: "server shutting down"))
    }

    @Test("shutdown unanswered → clean false at the close timeout")
    func shutdownUnanswered() {
        var h = Harness()
        h.send(.shutdownRequested)
        let end = h.fireTimer()
        #expect(end.record?.cause == .shutdown)
        #expect(end.record?.clean == false)
        #expect(end.closeTransport)
    }

    @Test("a reset after a completed close handshake changes nothing")
    func resetAfterClose() {
        var h = Harness()
        h.send(.closeReceived(code: 1000, reason: ""))
        #expect(h.send(.transportFailed) == .none)
        #expect(h.send(.inputEnded(midFrame: true)) == .none)
        #expect(h.send(.transportClosed) == .none)
        #expect(h.records.count == 1)
        #expect(h.records[0].kind == .normal)
    }

    @Test("transport gone without explanation → abnormal/reset")
    func unexplainedClose() {
        var h = Harness()
        #expect(h.send(.transportClosed).record?.cause == .reset)
    }
}

@Suite("Heartbeat")
struct HeartbeatTests {
    @Test("matching pong yields the round trip; the next ping follows P after the last")
    func roundTrip() {
        var h = Harness()
        let ping = h.fireTimer()
        let payload = try! #require(ping.sendPing)
        h.advance(.milliseconds(42))
        let pong = h.send(.pongReceived(PingPayload(bytes: payload.bytes)))
        #expect(pong.roundTrip == .milliseconds(42))
        #expect(h.supervisor.lastRoundTrip == .milliseconds(42))
        let pingAt = h.clock.now - .milliseconds(42)
        #expect(h.supervisor.nextDeadline == pingAt + .seconds(30))
        let second = h.fireTimer()
        #expect(second.sendPing == PingPayload(sequence: payload.sequence + 1))
    }

    @Test("pongs with a mismatched payload are activity, not a round trip, and do not end the wait")
    func mismatchedPong() {
        var h = Harness()
        let payload = try! #require(h.fireTimer().sendPing)
        h.advance(.seconds(1))
        #expect(h.send(.pongReceived(PingPayload(bytes: PingPayload(sequence: payload.sequence + 7).bytes))).roundTrip == nil)
        #expect(h.send(.pongReceived(PingPayload(bytes: [1, 2, 3]))).roundTrip == nil)
        #expect(h.send(.pongReceived(PingPayload(bytes: []))).roundTrip == nil)
        #expect(h.supervisor.lastRoundTrip == nil)
        #expect(h.supervisor.lastFrameAt == h.clock.now)
        let end = h.fireTimer()
        #expect(end.record?.cause == .pongTimeout)
    }

    @Test("unsolicited pongs postpone the read deadline")
    func unsolicitedPongIsActivity() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .zero, readDeadline: .seconds(2)))
        h.advance(.seconds(1))
        #expect(h.send(.pongReceived(PingPayload(bytes: [9]))) == .none)
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(2))
    }

    @Test("data frames do not end the wait for a pong")
    func dataDoesNotAnswerPing() {
        var h = Harness()
        h.fireTimer()
        for _ in 0..<9 {
            h.advance(.seconds(1))
            h.send(.frameReceived)
        }
        #expect(h.fireTimer().record?.cause == .pongTimeout)
    }

    @Test("P = 0 disables pings: no timer at all without a read deadline")
    func pingsDisabled() {
        let h = Harness(policy: SupervisionPolicy(pingInterval: .zero))
        #expect(h.supervisor.nextDeadline == nil)
    }

    @Test("a late pong after the timeout is ignored: exactly one record")
    func latePong() {
        var h = Harness()
        let payload = try! #require(h.fireTimer().sendPing)
        h.fireTimer()
        #expect(h.send(.pongReceived(PingPayload(bytes: payload.bytes))) == .none)
        #expect(h.records.map(\.cause) == [.pongTimeout])
    }

    @Test("with T > P only one ping is in flight; the next is sent once the pong arrives")
    func oneOutstandingPing() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .seconds(1), pongTimeout: .seconds(5)))
        let first = try! #require(h.fireTimer().sendPing)
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(5), "only the pong deadline is armed")
        h.advance(.seconds(3))
        h.send(.pongReceived(PingPayload(bytes: first.bytes)))
        #expect(h.supervisor.nextDeadline! <= h.clock.now, "the overdue ping is due at once")
        #expect(h.send(.timerFired).sendPing == PingPayload(sequence: first.sequence + 1))
    }

    @Test("earliest expired deadline explains the close when both pass")
    func earliestDeadlineWins() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .seconds(10), pongTimeout: .seconds(10), readDeadline: .seconds(15)))
        h.fireTimer()  // ping at 10 s; pong deadline 20 s; read deadline 15 s
        h.advance(.seconds(30))  // the loop stalled past both deadlines
        #expect(h.send(.timerFired).record?.cause == .readDeadline)
    }

    @Test("a reload reschedules the next ping from the last one sent")
    func reload() {
        var h = Harness()
        h.advance(.seconds(2))
        h.supervisor.update(policy: SupervisionPolicy(pingInterval: .seconds(1)))
        #expect(h.supervisor.nextDeadline == MonotonicInstant(nanoseconds: 1_000_000_000) + .seconds(1))
        #expect(h.send(.timerFired).sendPing != nil)
        h.supervisor.update(policy: SupervisionPolicy(pingInterval: .zero))
        #expect(h.supervisor.nextDeadline == nil, "disabling pings also drops the outstanding one")
    }
}

@Suite("Exactly one record")
struct ExactlyOnceTests {
    static let allEvents: [SupervisorEvent] = [
        .frameReceived, .pongReceived(nil), .pongReceived(PingPayload(sequence: 99)), .closeReceived(code: 1000, reason: ""),
        .closeReceived(code: nil, reason: ""),
        .protocolViolation(ProtocolViolation(cause: .protocolError, detail: "", aftermath: .awaitReply)),
        .protocolViolation(ProtocolViolation(cause: .messageTooBig, detail: "", aftermath: .framingLost)),
        .protocolViolation(ProtocolViolation(cause: .invalidUTF8, detail: "", aftermath: .peerAlreadyClosing)),
        .inputEnded(midFrame: false), .inputEnded(midFrame: true), .transportFailed, .backlogExceeded,
        .shutdownRequested, .timerFired, .transportClosed,
    ]

    @Test("every pair of events followed by the transport closing records exactly once", arguments: allEvents)
    func pairs(first: SupervisorEvent) {
        for second in Self.allEvents {
            var h = Harness(policy: SupervisionPolicy(pingInterval: .seconds(1), pongTimeout: .seconds(1), readDeadline: .seconds(3), closeTimeout: .seconds(1)))
            h.send(first)
            h.advance(.seconds(1))
            h.send(second)
            for _ in 0..<5 where h.supervisor.nextDeadline != nil { h.fireTimer() }
            h.send(.transportClosed)
            #expect(h.records.count == 1, "\(first) then \(second) produced \(h.records)")
            #expect(h.supervisor.phase == .closed)
            #expect(h.supervisor.nextDeadline == nil)
        }
    }

    @Test("a closed connection ignores every event")
    func closedIgnoresEverything() {
        var h = Harness()
        h.send(.inputEnded(midFrame: false))
        for event in Self.allEvents { #expect(h.send(event) == .none) }
    }
}

@Suite("Values")
struct ValueTests {
    @Test("ping payload round-trips through its bytes")
    func payload() {
        let payload = PingPayload(sequence: 0x0102_0304_0506_0708)
        #expect(payload.bytes == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(PingPayload(bytes: payload.bytes) == payload)
        #expect(PingPayload(bytes: [1, 2]) == nil)
    }

    @Test("Duration converts to nanoseconds, saturating")
    func durations() {
        #expect(Duration.milliseconds(1500).inNanoseconds == 1_500_000_000)
        #expect(Duration.seconds(Int64.max).inNanoseconds == Int64.max)
        #expect(Duration.microseconds(1).inMilliseconds == 0.001)
    }
}
