import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
import VigilConnection
import VigilFraming
import VigilSupervisor

/// Slow consumers on the real shell, with the channel's writability and the clock driven by the
/// test: the rule that the write timeout runs from the moment the output stopped draining, and
/// that a reload's new value reaches a connection already backed up. A black-box test of this
/// once failed on a loaded machine (no close within 16 s); these say the rule holds whatever the
/// order of events, and the black-box tests now measure from the stall vigild reports.
@Suite("Slow consumers on the shell, with writability and time driven by the test")
struct SlowConsumerShellTests {
    static let writeTimeout = Duration.seconds(10)

    func shell() throws -> Shell {
        let shell = try Shell(
            role: .server, policy: SupervisionPolicy(pingInterval: .zero, writeTimeout: Self.writeTimeout))
        shell.recorder.echo = true
        return shell
    }

    func setWritable(_ writable: Bool, _ shell: Shell) {
        shell.channel.isWritable = writable
        shell.channel.pipeline.fireChannelWritabilityChanged()
    }

    func reload(writeTimeout: Duration, _ shell: Shell) {
        shell.channel.pipeline.fireUserInboundEventTriggered(
            PolicyUpdate(SupervisionPolicy(pingInterval: .zero, writeTimeout: writeTimeout)))
    }

    @Test("a connection backed up before a reload is closed the new write timeout after it stalled")
    func reloadReachesABackedUpConnection() throws {
        let shell = try shell()
        try shell.receive(.binary, [1, 2, 3], masked: true)  // its echo is what backs up
        setWritable(false, shell)
        shell.advance(.seconds(1))
        reload(writeTimeout: .seconds(2), shell)
        shell.advance(.milliseconds(900))
        #expect(shell.recorder.outcomes.isEmpty, "1.9 s after the stall")
        shell.advance(.milliseconds(200))
        let (outcome, at) = try #require(shell.recorder.outcomes.first)
        #expect(outcome.cause == .slowConsumer && outcome.kind == .abnormal)
        #expect(at - shell.opened >= .seconds(2) && at - shell.opened <= .seconds(2) + TimerWheel.tick)
        #expect(!shell.channel.isActive)
    }

    @Test("a reload that shortens the timeout past the stall closes at once")
    func reloadPastTheStall() throws {
        let shell = try shell()
        setWritable(false, shell)
        shell.advance(.seconds(5))
        reload(writeTimeout: .seconds(2), shell)
        shell.advance(TimerWheel.tick)
        #expect(shell.recorder.outcomes.map(\.0.cause) == [.slowConsumer])
    }

    /// Random orders of messages, writability changes, reloads and time, against a model of the
    /// rule: the deadline is (start of the current unwritable spell) + (the write timeout now);
    /// a writable channel has none. Every sequence ends closed exactly when the model says, so no
    /// order leaves a connection paused with no timer.
    @Test("every order of events closes a stuck connection when the rule says, never before", arguments: 0..<200)
    func randomOrders(seed: Int) throws {
        var random = SplitMix(seed: UInt64(seed))
        let shell = try shell()
        var writable = true
        var stalledSince: Duration?
        var timeout = Self.writeTimeout
        var now = Duration.zero
        for _ in 0..<40 {
            guard shell.recorder.outcomes.isEmpty else { break }
            switch random.next() % 5 {
            case 0:
                try shell.receive(.text, Array("m".utf8), masked: true)
            case 1:
                writable.toggle()
                setWritable(writable, shell)
                stalledSince = writable ? nil : (stalledSince ?? now)
            case 2:
                timeout = .seconds(Int64(1 + random.next() % 12))
                reload(writeTimeout: timeout, shell)
            default:
                let step = Duration.milliseconds(Int64(random.next() % 3000))
                let deadline = stalledSince.map { $0 + timeout }
                shell.advance(step)
                now += step
                if let deadline, deadline <= now {
                    // Closed at the deadline's tick, not before; nothing else may end it.
                    let (outcome, at) = try #require(
                        shell.recorder.outcomes.first, "seed \(seed): no close at \(deadline)")
                    #expect(outcome.cause == .slowConsumer, "seed \(seed)")
                    let closedAfter = at - shell.opened
                    #expect(
                        closedAfter >= max(deadline, .zero)
                            && closedAfter <= max(deadline, now - step) + TimerWheel.tick,
                        "seed \(seed): closed at \(closedAfter), the rule says \(deadline)")
                } else {
                    #expect(shell.recorder.outcomes.isEmpty, "seed \(seed): closed at \(now) before any deadline")
                }
            }
        }
        if shell.recorder.outcomes.isEmpty, !writable {
            // Still open and stuck: it is closed once its deadline comes, however long that is.
            shell.advance(.seconds(13))
            #expect(shell.recorder.outcomes.map(\.0.cause) == [.slowConsumer], "seed \(seed)")
        }
    }
}

/// A small deterministic generator, so every seed replays the same events.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
