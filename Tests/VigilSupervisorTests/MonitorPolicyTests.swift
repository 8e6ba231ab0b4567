import Testing

@testable import VigilSupervisor

/// A deterministic random source for the backoff's jitter.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Reconnect backoff")
struct ReconnectBackoffTests {
    let maximum = Duration.seconds(60)

    @Test("first failure: 0 to 5 s; then full jitter under a doubling ceiling, capped at the maximum")
    func exponential() {
        var random = SeededRandom(state: 7)
        for seed in 0..<200 {
            random.state = UInt64(seed)
            var backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
            let first = backoff.next(after: .dialFailed(httpStatus: nil, retryAfter: nil), using: &random)
            #expect(first.rule == .first && first.delay >= .zero && first.delay <= .seconds(5))
            for n in 2...10 {
                let wait = backoff.next(after: .closed(code: 1006, upFor: .seconds(1)), using: &random)
                #expect(wait.rule == .exponential)
                #expect(wait.delay >= .zero && wait.delay <= backoff.ceiling(forFailure: n))
            }
        }
        let backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
        #expect(
            (1...6).map { backoff.ceiling(forFailure: $0) } == [
                .seconds(5), .seconds(10), .seconds(20), .seconds(40), .seconds(60), .seconds(60),
            ])
        #expect(backoff.ceiling(forFailure: 1000) == maximum)
    }

    @Test("the waits are spread: full jitter, not a fixed step")
    func jitter() {
        var random = SeededRandom(state: 1)
        var waits: Set<Duration> = []
        for _ in 0..<50 {
            var backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
            waits.insert(backoff.next(after: .closed(code: 1006, upFor: .zero), using: &random).delay)
        }
        #expect(waits.count > 40)
    }

    @Test("policy refusals wait the maximum", arguments: [1008, 1003, 4000, 4403, 4999] as [UInt16])
    func policyCodes(code: UInt16) {
        var random = SeededRandom(state: 3)
        var backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
        #expect(backoff.next(after: .closed(code: code, upFor: .seconds(1)), using: &random) == (maximum, .policy))
    }

    @Test("HTTP 401 and 403 wait the maximum; 503 and 429 honour Retry-After (capped at an hour)")
    func httpRefusals() {
        var random = SeededRandom(state: 3)
        var backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
        #expect(
            backoff.next(after: .dialFailed(httpStatus: 403, retryAfter: nil), using: &random) == (maximum, .policy))
        #expect(
            backoff.next(after: .dialFailed(httpStatus: 401, retryAfter: nil), using: &random) == (maximum, .policy))
        #expect(
            backoff.next(after: .dialFailed(httpStatus: 503, retryAfter: .seconds(7)), using: &random) == (
                .seconds(7), .retryAfter
            ))
        #expect(
            backoff.next(after: .dialFailed(httpStatus: 429, retryAfter: .seconds(90)), using: &random) == (
                .seconds(90), .retryAfter
            ))
        #expect(
            backoff.next(after: .dialFailed(httpStatus: 503, retryAfter: .seconds(86_400)), using: &random)
                == (ReconnectBackoff.retryAfterCap, .retryAfter))
        let plain = backoff.next(after: .dialFailed(httpStatus: 503, retryAfter: nil), using: &random)
        #expect(plain.rule == .exponential)
    }

    @Test("1012 and 1013: never sooner than the first-delay window")
    func serverBusy() {
        var random = SeededRandom(state: 9)
        for code: UInt16 in [1012, 1013] {
            for _ in 0..<50 {
                var backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
                let wait = backoff.next(after: .closed(code: code, upFor: .seconds(1)), using: &random)
                #expect(wait.rule == .serverBusy && wait.delay >= .seconds(5) && wait.delay <= maximum)
            }
        }
    }

    @Test("a connection up for reset_after starts the count again")
    func reset() {
        var random = SeededRandom(state: 5)
        var backoff = ReconnectBackoff(maximum: maximum, resetAfter: .seconds(60))
        for _ in 0..<6 { _ = backoff.next(after: .closed(code: 1006, upFor: .seconds(2)), using: &random) }
        #expect(backoff.consecutiveFailures == 6)
        let wait = backoff.next(after: .closed(code: 1006, upFor: .seconds(61)), using: &random)
        #expect(backoff.consecutiveFailures == 1 && wait.rule == .first && wait.delay <= .seconds(5))
    }
}

@Suite("Command probe")
struct CommandProbeTests {
    let rules = CommandProbe.Rules(
        every: .seconds(2), replyWithin: .seconds(3), template: #"{"requestID": {{id}}, "command": "status"}"#)

    @Test("requests carry fresh ids; a reply is matched by its requestID and timed")
    func roundTrip() {
        var probe = CommandProbe(rules: rules, startingAt: t0)
        #expect(probe.due(at: t0) == [.send(#"{"requestID": 1, "command": "status"}"#)])
        #expect(probe.nextDeadline == t0 + .seconds(2))
        #expect(probe.received(#"{"requestID": 7}"#, at: t0 + .milliseconds(10)) == nil, "answers nothing outstanding")
        #expect(probe.received(#"{"result": "ok", "requestID" : 1}"#, at: t0 + .milliseconds(40)) == .milliseconds(40))
        #expect(probe.received(#"{"requestID": 1}"#, at: t0 + .milliseconds(50)) == nil, "answered once")
        #expect(probe.due(at: t0 + .seconds(2)) == [.send(#"{"requestID": 2, "command": "status"}"#)])
        #expect(probe.replies == 1 && probe.lastReply == .milliseconds(40))
    }

    @Test("three timeouts in a row give the connection up; a reply in between resets the count")
    func timeouts() {
        var probe = CommandProbe(rules: rules, startingAt: t0)
        var now = t0
        _ = probe.due(at: now)  // id 1
        now = now + .seconds(2)
        _ = probe.due(at: now)  // id 2
        #expect(probe.nextDeadline == t0 + .seconds(3), "id 1's reply is due first")
        now = t0 + .seconds(3)
        #expect(probe.due(at: now).isEmpty && probe.consecutiveTimeouts == 1)
        _ = probe.received(#"{"requestID":2}"#, at: now)
        #expect(probe.consecutiveTimeouts == 0 && probe.timeouts == 1)
        var actions: [CommandProbe.Action] = []
        while !actions.contains(where: { if case .giveUp = $0 { true } else { false } }) {
            now = probe.nextDeadline
            actions = probe.due(at: now)
        }
        #expect(probe.consecutiveTimeouts == 3 && probe.timeouts == 4)
        #expect(now <= t0 + .seconds(3 + 2 * 3 + 3), "given up about three periods later")
    }

    @Test(
        "requestID is read as a JSON integer, not a string",
        arguments: [
            (#"{"requestID":12}"#, 12 as Int64?), ("{ \"requestID\" :\n -3 }", -3), (#"{"requestID":"12"}"#, nil),
            (#"{"id": 12}"#, nil), (#"{"requestIDs": 1, "requestID": 5}"#, 5), ("", nil),
        ])
    func parsing(text: String, id: Int64?) {
        #expect(CommandProbe.requestID(in: text) == id)
    }
}
