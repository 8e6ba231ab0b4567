import Testing

@testable import VigilSupervisor

/// The application-level heartbeat beside the protocol one: a text ping every interval, its
/// reply within the timeout, or the connection ends `abnormal/app_pong_timeout` with 4000.
@Suite("Application-level heartbeat")
struct AppHeartbeatTests {
    static let heartbeat = AppHeartbeat(
        interval: .seconds(5), timeout: .seconds(2), ping: #"{"type":"ping"}"#, pong: #"{"type":"pong"}"#)

    /// Protocol pings off, so every timer is the app heartbeat's.
    func harness(pings: Bool = false) -> Harness {
        Harness(policy: SupervisionPolicy(pingInterval: pings ? .seconds(5) : .zero, appHeartbeat: Self.heartbeat))
    }

    @Test("the app ping goes out one interval after the open, as text")
    func firstPing() {
        var h = harness()
        #expect(h.supervisor.nextDeadline == t0 + .seconds(5))
        #expect(h.fireTimer() == .sendAppPing(#"{"type":"ping"}"#))
    }

    @Test("a reply in time is a round trip, and the next ping follows one interval after the last")
    func replyInTime() {
        var h = harness()
        h.fireTimer()
        h.advance(.milliseconds(300))
        #expect(h.send(.appPongReceived) == .appRoundTrip(.milliseconds(300)))
        #expect(h.supervisor.lastAppRoundTrip == .milliseconds(300))
        #expect(h.supervisor.nextDeadline == t0 + .seconds(10))
        #expect(h.fireTimer() == .sendAppPing(#"{"type":"ping"}"#))
        #expect(h.records.isEmpty)
    }

    @Test("an app pong with no app ping outstanding measures nothing")
    func unsolicited() {
        var h = harness()
        #expect(h.send(.appPongReceived) == .none)
        #expect(h.supervisor.lastAppRoundTrip == nil)
    }

    @Test(
        "no reply within the timeout → abnormal/app_pong_timeout, 4000 sent, TCP closed at once, whatever protocol pongs say"
    )
    func timeout() {
        var h = harness(pings: true)
        let ping = h.fireTimer().ping  // the protocol ping at 5 s
        #expect(ping != nil)
        #expect(h.fireTimer() == .sendAppPing(#"{"type":"ping"}"#))  // the app ping, due at the same time
        h.advance(.milliseconds(10))
        #expect(h.send(.pongReceived(ping)).roundTrip != nil, "the browser's network process answers protocol pings")
        let action = h.fireTimer()
        #expect(h.clock.now == t0 + .seconds(7))
        #expect(action.closeFrame == OutgoingClose(code: 4000, reason: "app pong timeout"))
        #expect(action.closesTransport)
        #expect(
            h.records == [
                CloseOutcome(
                    kind: .abnormal, code: 1006, cause: .appPongTimeout, initiator: .local, clean: false, reason: "")
            ])
    }

    @Test("while the output is stalled an overdue app pong is a slow consumer: the ping may never have left")
    func stalled() {
        var h = harness()
        h.fireTimer()
        h.send(.outboundBacklog(bytes: 2 << 19, writable: false))
        h.fireTimer()
        #expect(h.records.map(\.cause) == [.slowConsumer])
    }

    @Test("a reload that turns it off drops the outstanding ping; turning it on schedules the first")
    func reload() {
        var h = harness()
        h.fireTimer()
        h.supervisor.update(policy: SupervisionPolicy(pingInterval: .zero))
        #expect(h.supervisor.nextDeadline == nil)
        var policy = SupervisionPolicy(pingInterval: .zero)
        policy.appHeartbeat = Self.heartbeat
        h.supervisor.update(policy: policy)
        #expect(h.supervisor.nextDeadline == t0 + .seconds(10))
    }

    @Test("the reply matches byte for byte")
    func matching() {
        #expect(Self.heartbeat.isPong(Array(#"{"type":"pong"}"#.utf8)))
        #expect(!Self.heartbeat.isPong(Array(#"{"type": "pong"}"#.utf8)))
        #expect(!Self.heartbeat.isPong(Array(#"{"type":"pong"} "#.utf8)))
    }
}
