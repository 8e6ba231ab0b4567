import NIOCore
import NIOPosix
import Synchronization
import Testing
import VigilSupervisor

@testable import VigilConnection

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Timer wheel", .timeLimit(.minutes(1)))
struct TimerWheelTests {
    /// Records when each token fired.
    final class Target: WheelTimerTarget, @unchecked Sendable {
        var fired: [(token: UInt64, at: MonotonicInstant)] = []
        func wheelTimerFired(token: UInt64) { fired.append((token, ConnectionClock.system.now())) }
    }

    @Test("every timer fires once, never early, and not a revolution late")
    func firesOnTime() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let start = ConnectionClock.system.now()
        let delays: [Duration] = (0..<300).map { .milliseconds(Int64($0 % 150)) }
        let targets = try await loop.submit {
            let wheel = TimerWheel(eventLoop: loop)
            return delays.enumerated().map { index, delay in
                let target = Target()
                wheel.schedule(target, token: UInt64(index), at: start + delay)
                return target
            }
        }.get()
        try await Task.sleep(for: .milliseconds(400))
        let results = try await loop.submit { targets.map(\.fired) }.get()
        for (index, fired) in results.enumerated() {
            #expect(fired.count == 1, "timer \(index) fired \(fired.count) times")
            guard let first = fired.first else { continue }
            #expect(first.token == UInt64(index))
            let lateness = first.at - (start + delays[index])
            #expect(lateness >= .zero, "timer \(index) fired \(lateness) early")
            // One tick plus scheduling in theory; the bound only catches gross errors on a busy machine.
            #expect(lateness < .milliseconds(500), "timer \(index) fired \(lateness) late")
        }
        try await group.shutdownGracefully()
    }

    @Test("deadlines beyond one revolution wait for their turn; past deadlines fire on the next tick")
    func farAndPast() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let target = Target()
        let start = ConnectionClock.system.now()
        try await loop.submit {
            let wheel = TimerWheel(eventLoop: loop)
            wheel.schedule(target, token: 1, at: start - .seconds(5))
            // 10.24 s is one revolution: 10.25 s lands in the slot right after "now"'s.
            wheel.schedule(target, token: 2, at: start + .milliseconds(10_250))
        }.get()
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await loop.submit { target.fired.map(\.token) }.get() == [1], "the far timer waits a revolution")
        try await group.shutdownGracefully()
    }

    @Test("the wheel wakes for due timers only, not on every tick; an earlier timer moves the wake forward")
    func sleepsUntilDue() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let late = Target()
        let early = Target()
        let start = ConnectionClock.system.now()
        let wheel = try await loop.submit {
            let wheel = TimerWheel(eventLoop: loop)
            wheel.schedule(late, token: 1, at: start + .milliseconds(400))
            wheel.schedule(early, token: 2, at: start + .milliseconds(50))  // before the wake already set
            return NIOLoopBound(wheel, eventLoop: loop)
        }.get()
        try await Task.sleep(for: .milliseconds(600))
        let (wakes, earlyFired, lateFired) = try await loop.submit {
            (wheel.value.wakeCount, early.fired.map(\.at), late.fired.map(\.at))
        }.get()
        #expect(earlyFired.count == 1 && lateFired.count == 1)
        if let at = earlyFired.first {
            #expect(
                at >= start + .milliseconds(50) && at < start + .milliseconds(350),
                "the early timer fired at \(at - start)")
        }
        // Ticking every 10 ms would have woken about 60 times; two timers need two wakes.
        #expect(wakes <= 4, "the wheel woke \(wakes) times for two timers")
        try await group.shutdownGracefully()
    }

    @Test("a callback that sets a past deadline during a late pass fires on the next tick, not a revolution later")
    func pastDeadlineFromCallback() async throws {
        final class Rearming: WheelTimerTarget, @unchecked Sendable {
            var wheel: TimerWheel?
            var fired: [UInt64] = []
            func wheelTimerFired(token: UInt64) {
                fired.append(token)
                if token == 1 { wheel?.schedule(self, token: 2, at: ConnectionClock.system.now() - .milliseconds(500)) }
            }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let target = Rearming()
        try await loop.submit {
            let wheel = TimerWheel(eventLoop: loop)
            target.wheel = wheel
            wheel.schedule(target, token: 1, at: ConnectionClock.system.now() + .milliseconds(20))
            usleep(200_000)  // a stalled loop: the pass that fires token 1 covers many ticks
        }.get()
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await loop.submit { target.fired }.get() == [1, 2])
        try await loop.submit { target.wheel = nil }.get()
        try await group.shutdownGracefully()
    }
}
