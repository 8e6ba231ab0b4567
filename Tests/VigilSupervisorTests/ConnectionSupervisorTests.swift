import Testing

@testable import VigilSupervisor

/// A manual clock: tests move time explicitly and stamp every event with it.
struct ManualClock {
    var now = MonotonicInstant(nanoseconds: 1_000_000_000)
    mutating func advance(_ duration: Duration) { now = now + duration }
}

let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)

/// One supervised connection driven by a manual clock, collecting every record it produces.
struct Harness {
    var clock = ManualClock()
    var supervisor: ConnectionSupervisor
    var records: [CloseOutcome] = []

    /// `closer`: `.localEnd` is the server role, `.remoteEnd` the client role.
    init(policy: SupervisionPolicy = SupervisionPolicy(), closer: TransportCloser = .localEnd) {
        supervisor = ConnectionSupervisor(policy: policy, transportCloser: closer, openedAt: clock.now, pingSeed: 42)
    }

    @discardableResult
    mutating func send(_ event: SupervisorEvent) -> SupervisorAction {
        let action = supervisor.handle(event, at: clock.now)
        if let record = action.outcome { records.append(record) }
        return action
    }

    /// Advances to the armed deadline and fires the timer, as the NIO shell does.
    @discardableResult
    mutating func fireTimer() -> SupervisorAction {
        guard let deadline = supervisor.nextDeadline else {
            Issue.record("no timer armed")
            return .none
        }
        if deadline > clock.now { clock.now = deadline }
        return send(.timerFired)
    }

    mutating func advance(_ duration: Duration) { clock.advance(duration) }
}

extension SupervisorAction {
    var ping: PingPayload? { if case .sendPing(let payload) = self { payload } else { nil } }
    var roundTrip: Duration? { if case .roundTrip(let duration) = self { duration } else { nil } }
    var finish: Finish? { if case .finish(let finish) = self { finish } else { nil } }
    /// The close frame this action sends, whether it starts a handshake or ends the connection.
    var closeFrame: OutgoingClose? {
        switch self {
        case .startClose(let frame): frame
        case .finish(let finish): finish.closeFrame
        default: nil
        }
    }
    var closesTransport: Bool {
        switch self {
        case .closeTransport: true
        case .finish(let finish): finish.closeTransport
        default: false
        }
    }
}

func violation(_ cause: CloseCause, _ detail: String = "bad", inCloseFrame: Bool = false) -> SupervisorEvent {
    .protocolViolation(ProtocolViolation(cause: cause, detail: detail, inCloseFrame: inCloseFrame))
}

@Suite("Close classification: every row of the table")
struct CloseTableTests {
    @Test("remote close 1000 → normal/peer_close/peer, clean, echoed, TCP closed at once (server)")
    func remoteNormal() {
        var h = Harness()
        let action = h.send(.closeReceived(code: 1000, reason: "bye"))
        #expect(
            action.outcome
                == CloseOutcome(
                    kind: .normal, code: 1000, cause: .remoteClose, initiator: .remote, clean: true, reason: "bye"))
        #expect(action.closeFrame == OutgoingClose(code: 1000, reason: ""))
        #expect(action.closesTransport)
        #expect(h.supervisor.phase == .closed)
    }

    @Test("remote close without status → normal/1005, answered with an empty close")
    func remoteNoStatus() {
        var h = Harness()
        let action = h.send(.closeReceived(code: nil, reason: ""))
        #expect(action.outcome?.kind == .normal)
        #expect(action.outcome?.code == 1005)
        #expect(action.closeFrame == OutgoingClose(code: nil, reason: ""))
    }

    @Test("remote close 1001 → going_away")
    func remoteGoingAway() {
        var h = Harness()
        #expect(h.send(.closeReceived(code: 1001, reason: "")).outcome?.kind == .goingAway)
    }

    @Test(
        "remote close with another valid status → error with that code",
        arguments: [1002, 1003, 1007, 1011, 1014, 3000, 4999] as [UInt16])
    func remoteError(code: UInt16) {
        var h = Harness()
        let record = h.send(.closeReceived(code: code, reason: "x")).outcome
        #expect(
            record
                == CloseOutcome(
                    kind: .error, code: code, cause: .remoteClose, initiator: .remote, clean: true, reason: "x"))
    }

    @Test("FIN between frames → eof/1006/eof/peer")
    func eof() {
        var h = Harness()
        let action = h.send(.inputEnded(midFrame: false))
        #expect(
            action.outcome
                == CloseOutcome(kind: .eof, code: 1006, cause: .eof, initiator: .remote, clean: false, reason: ""))
        #expect(action.closeFrame == nil)
        #expect(action.closesTransport)
    }

    @Test("FIN mid-frame → abnormal/truncated_frame")
    func truncated() {
        var h = Harness()
        #expect(h.send(.inputEnded(midFrame: true)).outcome == .abnormal(.truncatedFrame, initiator: .remote))
    }

    @Test("reset or read error → abnormal/reset")
    func reset() {
        var h = Harness()
        #expect(
            h.send(.transportFailed).outcome
                == CloseOutcome(
                    kind: .abnormal, code: 1006, cause: .reset, initiator: .remote, clean: false, reason: ""))
    }

    @Test("no pong within T → abnormal/pong_timeout/vigild, close frame sent, no waiting")
    func pongTimeout() {
        var h = Harness()
        #expect(h.fireTimer().ping != nil)
        #expect(h.clock.now == t0 + .seconds(30))
        let end = h.fireTimer()
        #expect(h.clock.now == t0 + .seconds(40))
        #expect(
            end.outcome
                == CloseOutcome(
                    kind: .abnormal, code: 1006, cause: .pongTimeout, initiator: .local, clean: false, reason: ""))
        #expect(end.closeFrame?.code == 1008)
        #expect(end.closesTransport)
        #expect(h.supervisor.nextDeadline == nil)
    }

    @Test("no frame within R → abnormal/read_deadline/vigild")
    func readDeadline() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .zero, readDeadline: .seconds(5)))
        h.advance(.seconds(3))
        h.send(.frameReceived)
        // The timer armed at open+5s fires early: the deadline moved, nothing happens.
        h.clock.now = t0 + .seconds(5)
        #expect(h.send(.timerFired) == .none)
        #expect(h.supervisor.nextDeadline == t0 + .seconds(8))
        let end = h.fireTimer()
        #expect(end.outcome?.cause == .readDeadline)
        #expect(end.outcome?.kind == .abnormal)
        #expect(end.outcome?.initiator == .local)
        #expect(end.closeFrame?.code == 1008)
    }

    @Test(
        "protocol violations fail the connection at once: close frame, record, TCP closed (RFC 6455 §7.1.7)",
        arguments: [(CloseCause.protocolError, 1002), (.invalidUTF8, 1007), (.messageTooBig, 1009)]
            as [(CloseCause, UInt16)])
    func violationFailsFast(cause: CloseCause, code: UInt16) {
        for closer in [TransportCloser.localEnd, .remoteEnd] {
            var h = Harness(closer: closer)
            let action = h.send(violation(cause))
            #expect(action.closeFrame == OutgoingClose(code: code, reason: "bad"))
            #expect(
                action.outcome
                    == CloseOutcome(
                        kind: .error, code: code, cause: cause, initiator: .local, clean: false, reason: "bad"))
            #expect(action.closesTransport, "no wait for the answering close, whichever end this is")
            #expect(h.supervisor.phase == .closed)
            #expect(h.send(.closeReceived(code: code, reason: "")) == .none, "a late answer is not processed")
        }
    }

    @Test("a violation in the remote end's own close frame: this end's close answers it → clean, closed at once")
    func violationInRemoteClose() {
        var h = Harness()
        let action = h.send(violation(.protocolError, "invalid close code 1005", inCloseFrame: true))
        #expect(action.closeFrame == OutgoingClose(code: 1002, reason: "invalid close code 1005"))
        #expect(
            action.outcome
                == CloseOutcome(
                    kind: .error, code: 1002, cause: .protocolError, initiator: .local, clean: true,
                    reason: "invalid close code 1005"))
        #expect(action.closesTransport)
    }

    @Test("a violation while waiting for the answer to this end's close ends the wait, not clean")
    func violationWhileClosing() {
        var h = Harness()
        h.send(.closeRequested(.shutdown))
        let end = h.send(violation(.invalidUTF8))
        #expect(end.outcome == LocalClose.shutdown.outcome(clean: false))
        #expect(end.closeFrame == nil, "the close frame was already sent")
        #expect(end.closesTransport)
    }

    @Test("shutdown → going_away/1001/shutdown/vigild; clean when the remote end answers")
    func shutdownAnswered() {
        var h = Harness()
        let start = h.send(.closeRequested(.shutdown))
        #expect(start == .startClose(OutgoingClose(code: 1001, reason: "vigild shutting down")))
        #expect(!h.supervisor.isOpen)
        let end = h.send(.closeReceived(code: 1001, reason: ""))
        #expect(
            end.outcome
                == CloseOutcome(
                    kind: .goingAway, code: 1001, cause: .shutdown, initiator: .local, clean: true,
                    reason: "vigild shutting down"))
        #expect(end.closeFrame == nil, "the handshake is complete: no second close frame")
        #expect(end.closesTransport)
    }

    @Test("shutdown unanswered → clean false at the close timeout")
    func shutdownUnanswered() {
        var h = Harness()
        h.send(.closeRequested(.shutdown))
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(5))
        let end = h.fireTimer()
        #expect(end.outcome?.cause == .shutdown)
        #expect(end.outcome?.clean == false)
        #expect(end.closesTransport)
    }

    @Test("FIN while waiting for the close reply → the status sent, clean false")
    func closeThenEOF() {
        var h = Harness()
        h.send(.closeRequested(LocalClose(code: 4000, reason: "drain", cause: .shutdown)))
        let end = h.send(.inputEnded(midFrame: false))
        #expect(
            end.outcome
                == CloseOutcome(
                    kind: .error, code: 4000, cause: .shutdown, initiator: .local, clean: false, reason: "drain"))
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
        #expect(h.send(.transportClosed).outcome?.cause == .reset)
    }
}

@Suite("The client end's close handshake (RFC 6455 §7.1.1: the server closes TCP first)")
struct ClientCloseTests {
    @Test("the server closes first: answered, recorded at once, then the server's FIN is awaited")
    func serverCloses() {
        var h = Harness(closer: .remoteEnd)
        let answer = h.send(.closeReceived(code: 1000, reason: "bye"))
        #expect(answer.closeFrame == OutgoingClose(code: 1000, reason: ""))
        #expect(
            answer.outcome
                == CloseOutcome(
                    kind: .normal, code: 1000, cause: .remoteClose, initiator: .remote, clean: true, reason: "bye"))
        #expect(!answer.closesTransport, "the client waits for the server to close TCP")
        #expect(h.supervisor.phase == .awaitingTransportClose(deadline: h.clock.now + .seconds(5)))
        #expect(h.supervisor.isFinished)
        h.advance(.milliseconds(3))
        #expect(h.send(.inputEnded(midFrame: false)) == .closeTransport)
        #expect(h.supervisor.phase == .closed)
        #expect(h.records.count == 1)
    }

    @Test("the client closes first: the server's answer completes it, and the client still waits for the FIN")
    func clientCloses() {
        var h = Harness(closer: .remoteEnd)
        let close = LocalClose(code: 1000, reason: "done", cause: .shutdown)
        #expect(h.send(.closeRequested(close)) == .startClose(OutgoingClose(code: 1000, reason: "done")))
        h.advance(.milliseconds(10))
        let answered = h.send(.closeReceived(code: 1000, reason: ""))
        #expect(answered.outcome == close.outcome(clean: true))
        #expect(answered.closeFrame == nil)
        #expect(!answered.closesTransport)
        #expect(h.send(.transportClosed) == .closeTransport)
    }

    @Test("a server that never closes TCP: the client closes it at the close timeout, the record unchanged")
    func serverNeverCloses() {
        var h = Harness(closer: .remoteEnd)
        h.send(.closeReceived(code: 1001, reason: ""))
        h.advance(.seconds(4))
        #expect(h.send(.timerFired) == .none, "not yet")
        #expect(h.fireTimer() == .closeTransport)
        #expect(h.clock.now == t0 + .seconds(5))
        #expect(h.records.map(\.kind) == [.goingAway])
        #expect(h.supervisor.nextDeadline == nil)
    }

    @Test("while waiting for the FIN nothing else counts: no pings, no second record")
    func quietWhileWaiting() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .seconds(1)), closer: .remoteEnd)
        h.send(.closeReceived(code: 1000, reason: ""))
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(5))
        #expect(h.send(.closeReceived(code: 1000, reason: "")) == .none)
        #expect(h.send(violation(.protocolError)) == .none)
        #expect(h.send(.outboundBacklog(bytes: 1 << 30, writable: false)) == .none)
        #expect(h.records.count == 1)
    }

    @Test("deadlines and the heartbeat close a client's connection at once, as a server's")
    func deadlinesCloseAtOnce() {
        var h = Harness(
            policy: SupervisionPolicy(pingInterval: .seconds(1), pongTimeout: .seconds(1)), closer: .remoteEnd)
        #expect(h.fireTimer().ping != nil)
        let end = h.fireTimer()
        #expect(end.outcome?.cause == .pongTimeout)
        #expect(end.closesTransport)
    }
}

@Suite("Slow consumers: by time unwritable, or at the ceiling")
struct SlowConsumerTests {
    let policy = SupervisionPolicy(
        pingInterval: .zero, writeTimeout: .seconds(10), maxBacklog: 1000, backlogCeiling: 5000)

    @Test("a transport that becomes writable again within the write timeout is fine")
    func drains() {
        var h = Harness(policy: policy)
        #expect(h.send(.outboundBacklog(bytes: 1500, writable: false)) == .none)
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(10))
        h.advance(.seconds(9))
        #expect(h.send(.outboundBacklog(bytes: 400, writable: true)) == .none)
        #expect(h.supervisor.nextDeadline == nil)
        h.advance(.seconds(5))
        #expect(h.records.isEmpty)
    }

    @Test("unwritable for the whole write timeout → abnormal/slow_consumer, no close frame")
    func stuck() {
        var h = Harness(policy: policy)
        h.send(.outboundBacklog(bytes: 1500, writable: false))
        h.advance(.seconds(4))
        h.send(.outboundBacklog(bytes: 4000, writable: false))  // still stalled: the clock does not restart
        let end = h.fireTimer()
        #expect(h.clock.now == t0 + .seconds(10))
        #expect(
            end.outcome
                == CloseOutcome(
                    kind: .abnormal, code: 1006, cause: .slowConsumer, initiator: .local, clean: false, reason: ""))
        #expect(end.closeFrame == nil)
        #expect(end.closesTransport)
    }

    @Test("a backlog under max_backlog that is still unwritable keeps the clock running")
    func hysteresis() {
        // The channel stays unwritable until its backlog is under half of max_backlog, and
        // reading stays paused as long: clearing the clock at 999 bytes would leave a paused,
        // stuck connection with no timer at all.
        var h = Harness(policy: policy)
        h.send(.outboundBacklog(bytes: 1500, writable: false))
        h.advance(.seconds(2))
        h.send(.outboundBacklog(bytes: 700, writable: false))
        #expect(h.fireTimer().outcome?.cause == .slowConsumer)
        #expect(h.clock.now == t0 + .seconds(10))
    }

    @Test("the stall clock restarts after the transport was writable again")
    func restarts() {
        var h = Harness(policy: policy)
        h.send(.outboundBacklog(bytes: 1500, writable: false))
        h.advance(.seconds(8))
        h.send(.outboundBacklog(bytes: 499, writable: true))
        h.advance(.seconds(1))
        h.send(.outboundBacklog(bytes: 1001, writable: false))
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(10))
    }

    @Test("a pong deadline that passes while the output is stalled is a slow consumer, not a pong timeout")
    func pongBehindTheBacklog() {
        var h = Harness(
            policy: SupervisionPolicy(
                pingInterval: .seconds(1), pongTimeout: .seconds(1), readDeadline: .zero, closeTimeout: .seconds(5),
                writeTimeout: .seconds(10), maxBacklog: 1000, backlogCeiling: 5000))
        h.advance(.seconds(1))
        guard case .sendPing = h.fireTimer() else {
            Issue.record("expected a ping")
            return
        }
        h.send(.outboundBacklog(bytes: 1500, writable: false))  // the ping is stuck behind this
        let end = h.fireTimer()
        #expect(h.clock.now == t0 + .seconds(2), "at the pong deadline, long before the write timeout")
        #expect(end.outcome?.cause == .slowConsumer && end.closeFrame == nil)
        // Writable again before the deadline: an unanswered ping is a pong timeout as ever.
        var quiet = Harness(
            policy: SupervisionPolicy(
                pingInterval: .seconds(1), pongTimeout: .seconds(1), readDeadline: .zero, closeTimeout: .seconds(5),
                writeTimeout: .seconds(10), maxBacklog: 1000, backlogCeiling: 5000))
        quiet.advance(.seconds(1))
        _ = quiet.fireTimer()
        quiet.send(.outboundBacklog(bytes: 1500, writable: false))
        quiet.send(.outboundBacklog(bytes: 400, writable: true))
        #expect(quiet.fireTimer().outcome?.cause == .pongTimeout)
    }

    @Test("over the ceiling → slow_consumer at once")
    func ceiling() {
        var h = Harness(policy: policy)
        #expect(h.send(.outboundBacklog(bytes: 5000, writable: false)) == .none)
        #expect(h.send(.outboundBacklog(bytes: 5001, writable: false)).outcome?.cause == .slowConsumer)
    }

    @Test("write timeout 0: only the ceiling applies")
    func timeoutOff() {
        var h = Harness(
            policy: SupervisionPolicy(pingInterval: .zero, writeTimeout: .zero, maxBacklog: 1000, backlogCeiling: 5000))
        h.send(.outboundBacklog(bytes: 4000, writable: false))
        #expect(h.supervisor.nextDeadline == nil)
        #expect(h.send(.outboundBacklog(bytes: 6000, writable: false)).outcome?.cause == .slowConsumer)
    }

    @Test("stuck while waiting for a close answer → the close's record, not clean")
    func stuckWhileClosing() {
        var h = Harness(policy: policy)
        h.send(.closeRequested(.shutdown))
        #expect(
            h.send(.outboundBacklog(bytes: 9000, writable: false)).outcome == LocalClose.shutdown.outcome(clean: false))
    }
}

@Suite("Heartbeat")
struct HeartbeatTests {
    @Test("matching pong yields the round trip; the next ping follows P after the last")
    func roundTrip() {
        var h = Harness()
        let payload = try! #require(h.fireTimer().ping)
        h.advance(.milliseconds(42))
        #expect(h.send(.pongReceived(PingPayload(bytes: payload.bytes))).roundTrip == .milliseconds(42))
        #expect(h.supervisor.lastRoundTrip == .milliseconds(42))
        let pingAt = h.clock.now - .milliseconds(42)
        #expect(h.supervisor.nextDeadline == pingAt + .seconds(30))
        let next = try! #require(h.fireTimer().ping)
        #expect(next != payload)
    }

    @Test("pongs with a mismatched payload are activity, not a round trip, and do not end the wait")
    func mismatchedPong() {
        var h = Harness()
        let payload = try! #require(h.fireTimer().ping)
        h.advance(.seconds(1))
        #expect(h.send(.pongReceived(PingPayload(bytes: PingPayload(value: payload.value &+ 1).bytes))) == .none)
        #expect(h.send(.pongReceived(PingPayload(bytes: [1, 2, 3]))) == .none)
        #expect(h.send(.pongReceived(PingPayload(bytes: []))) == .none)
        #expect(h.supervisor.lastRoundTrip == nil)
        #expect(h.supervisor.lastFrameAt == h.clock.now)
        #expect(h.fireTimer().outcome?.cause == .pongTimeout)
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
        #expect(h.fireTimer().outcome?.cause == .pongTimeout)
    }

    @Test("P = 0 disables pings: no timer at all without a read deadline")
    func pingsDisabled() {
        let h = Harness(policy: SupervisionPolicy(pingInterval: .zero))
        #expect(h.supervisor.nextDeadline == nil)
    }

    @Test("a late pong after the timeout is ignored: exactly one record")
    func latePong() {
        var h = Harness()
        let payload = try! #require(h.fireTimer().ping)
        h.fireTimer()
        #expect(h.send(.pongReceived(PingPayload(bytes: payload.bytes))) == .none)
        #expect(h.records.map(\.cause) == [.pongTimeout])
    }

    @Test("with T > P only one ping is in flight; the next is sent once the pong arrives")
    func oneOutstandingPing() {
        var h = Harness(policy: SupervisionPolicy(pingInterval: .seconds(1), pongTimeout: .seconds(5)))
        let first = try! #require(h.fireTimer().ping)
        #expect(h.supervisor.nextDeadline == h.clock.now + .seconds(5), "only the pong deadline is armed")
        h.advance(.seconds(3))
        h.send(.pongReceived(PingPayload(bytes: first.bytes)))
        #expect(h.supervisor.nextDeadline! <= h.clock.now, "the overdue ping is due at once")
        #expect(h.send(.timerFired).ping.map { $0 != first } == true)
    }

    @Test("earliest expired deadline explains the close when several pass")
    func earliestDeadlineWins() {
        var h = Harness(
            policy: SupervisionPolicy(
                pingInterval: .seconds(10), pongTimeout: .seconds(10), readDeadline: .seconds(15),
                writeTimeout: .seconds(12), maxBacklog: 10))
        h.advance(.seconds(1))
        h.send(.outboundBacklog(bytes: 11, writable: false))  // write deadline 13 s
        h.clock.now = t0 + .seconds(10)
        h.send(.timerFired)  // ping at 10 s; pong deadline 20 s; read deadline 15 s
        h.advance(.seconds(30))  // the loop stalled past all three
        #expect(h.send(.timerFired).outcome?.cause == .slowConsumer)
    }

    @Test("a reload reschedules the next ping from the last one sent")
    func reload() {
        var h = Harness()
        h.advance(.seconds(2))
        h.supervisor.update(policy: SupervisionPolicy(pingInterval: .seconds(1)))
        #expect(h.supervisor.nextDeadline == t0 + .seconds(1))
        #expect(h.send(.timerFired).ping != nil)
        h.supervisor.update(policy: SupervisionPolicy(pingInterval: .zero))
        #expect(h.supervisor.nextDeadline == nil, "disabling pings also drops the outstanding one")
    }
}

@Suite("Exactly one record")
struct ExactlyOnceTests {
    static let allEvents: [SupervisorEvent] = [
        .frameReceived, .pongReceived(nil), .pongReceived(PingPayload(value: 99)),
        .closeReceived(code: 1000, reason: ""),
        .closeReceived(code: nil, reason: ""), violation(.protocolError), violation(.messageTooBig),
        violation(.invalidUTF8, inCloseFrame: true), .inputEnded(midFrame: false), .inputEnded(midFrame: true),
        .transportFailed, .outboundBacklog(bytes: 2000, writable: false),
        .outboundBacklog(bytes: 1 << 30, writable: false),
        .outboundBacklog(bytes: 0, writable: true),
        .closeRequested(.shutdown), .timerFired, .transportClosed,
    ]

    @Test(
        "every pair of events followed by the transport closing records exactly once, in both roles",
        arguments: allEvents)
    func pairs(first: SupervisorEvent) {
        for closer in [TransportCloser.localEnd, .remoteEnd] {
            for second in Self.allEvents {
                var h = Harness(
                    policy: SupervisionPolicy(
                        pingInterval: .seconds(1), pongTimeout: .seconds(1), readDeadline: .seconds(3),
                        closeTimeout: .seconds(1), writeTimeout: .seconds(1), maxBacklog: 1000, backlogCeiling: 10_000),
                    closer: closer)
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
        let payload = PingPayload(value: 0x0102_0304_0506_0708)
        #expect(payload.bytes == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(PingPayload(bytes: payload.bytes) == payload)
        #expect(PingPayload(bytes: [1, 2]) == nil)
    }

    @Test("ping payloads are not a counter: consecutive ones share no simple relation, and the seed decides them")
    func unpredictable() {
        var stream = PingPayloads(seed: 7)
        let values = (0..<1000).map { _ in stream.next().value }
        #expect(Set(values).count == 1000)
        let steps = Set(zip(values, values.dropFirst()).map { $1 &- $0 })
        #expect(steps.count > 990, "no constant step between consecutive payloads")
        var again = PingPayloads(seed: 7)
        #expect(again.next().value == values[0])
        var other = PingPayloads(seed: 8)
        #expect(other.next().value != values[0])
    }

    @Test("Duration converts to nanoseconds, saturating")
    func durations() {
        #expect(Duration.milliseconds(1500).inNanoseconds == 1_500_000_000)
        #expect(Duration.seconds(Int64.max).inNanoseconds == Int64.max)
        #expect(Duration.microseconds(1).inMilliseconds == 0.001)
    }

    @Test("initiators and causes keep their words on the wire")
    func wireWords() {
        #expect(CloseInitiator.allCases.map(\.rawValue) == ["peer", "vigild"])
        #expect(CloseCause.remoteClose.rawValue == "peer_close")
    }
}
