import Testing
import VigilConfig
import VigilSupervisor

@testable import VigilProxy

@Suite("Pools: which member a new pair tries, and passive health")
struct PoolBalancerTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)

    func pool(_ names: [String], _ policy: BalancePolicy = .roundRobin, drained: Set<String> = []) -> PoolBalancer {
        PoolBalancer(
            members: names.map {
                PoolMember(name: $0, url: WebSocketURL("ws://\($0):80/")!, drain: drained.contains($0))
            }, policy: policy)
    }

    func names(_ balancer: PoolBalancer, _ plan: [Int]) -> [String] { plan.map { balancer.members[$0].name } }

    @Test("round robin: each member in turn, the others behind it as fallbacks")
    func roundRobin() {
        var balancer = pool(["a", "b", "c"])
        var firsts: [String] = []
        for _ in 0..<6 {
            let plan = balancer.plan(at: t0)
            #expect(plan.count == 3)
            firsts.append(balancer.members[plan[0]].name)
        }
        #expect(firsts == ["a", "b", "c", "a", "b", "c"])
    }

    @Test("a failed member rests 1 s, doubled per failure in a row up to 30 s, and is tried last meanwhile")
    func rests() {
        var balancer = pool(["a", "b", "c"])
        let rest1 = balancer.failed(1, at: t0)
        #expect(rest1 == .seconds(1))
        #expect(!balancer.members[1].up)
        for _ in 0..<4 {
            let plan = balancer.plan(at: t0 + .milliseconds(500))
            #expect(names(balancer, plan).last == "b")
        }
        // Its rest over, it is in the rotation again; failing again rests it longer.
        let later = t0 + .seconds(1)
        let plan = balancer.plan(at: later)
        #expect(names(balancer, plan).contains("b"))
        let rest2 = balancer.failed(1, at: later)
        #expect(rest2 == .seconds(2))
        var at = later + .seconds(2)
        var rests: [Duration] = []
        for _ in 0..<6 {
            rests.append(balancer.failed(1, at: at)!)
            at = at + rests.last!
        }
        #expect(rests == [.seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30), .seconds(30)])
        let wasDown = balancer.answered(1)
        #expect(wasDown, "it was down")
        #expect(balancer.members[1].up && balancer.members[1].failures == 0)
        let rest3 = balancer.failed(1, at: at)
        #expect(rest3 == .seconds(1), "an answer forgets the failures")
    }

    @Test("a member tried while resting (every member was) keeps its rest: failing then changes nothing")
    func allDown() {
        var balancer = pool(["a", "b"])
        _ = balancer.failed(0, at: t0)
        _ = balancer.failed(1, at: t0 + .milliseconds(100))
        let order = balancer.plan(at: t0 + .milliseconds(200))
        let plan = names(balancer, order)
        #expect(plan == ["a", "b"], "both tried anyway, the one back soonest first")
        let rest4 = balancer.failed(0, at: t0 + .milliseconds(200))
        #expect(rest4 == nil)
        #expect(balancer.members[0].failures == 1)
    }

    @Test("least connections: the member with the fewest pairs, in turn among equals")
    func leastConnections() {
        var balancer = pool(["a", "b", "c"], .leastConnections)
        balancer.tryStarted(0)
        balancer.tryStarted(0)
        balancer.tryStarted(1)
        do {
            let plan = balancer.plan(at: t0)
            #expect(names(balancer, plan) == ["c", "b", "a"])
        }
        balancer.tryStarted(2)
        balancer.tryStarted(2)
        do {
            let plan = balancer.plan(at: t0)
            #expect(names(balancer, plan).first == "b")
        }
        balancer.released(0)
        balancer.released(0)
        do {
            let plan = balancer.plan(at: t0)
            #expect(names(balancer, plan).first == "a")
        }
        balancer.released(0)
        #expect(balancer.members[0].pairs == 0, "never below zero")
    }

    @Test("drained members are never tried; a reload keeps health and pairs by name and URL")
    func drainAndReload() {
        var balancer = pool(["a", "b", "c"], drained: ["b"])
        for _ in 0..<3 {
            let plan = balancer.plan(at: t0)
            #expect(!names(balancer, plan).contains("b"))
        }
        balancer.tryStarted(0)
        _ = balancer.failed(2, at: t0)
        let next = balancer.reconfigured(
            [
                PoolMember(name: "a", url: WebSocketURL("ws://a:80/")!),
                PoolMember(name: "c", url: WebSocketURL("ws://c2:80/")!),  // a new URL: a new member
                PoolMember(name: "d", url: WebSocketURL("ws://d:80/")!),
            ], policy: .roundRobin)
        #expect(next.members.map(\.name) == ["a", "c", "d"])
        #expect(next.members[0].pairs == 1)
        #expect(next.members[1].up && next.members[2].up)
        var empty = pool([])
        #expect(empty.plan(at: t0).isEmpty)
    }
}
