import NIOConcurrencyHelpers
import Prometheus

/// The proxy routes' pool members, in the registry's own collector registry, labelled by the
/// configured names (never URLs): `vigil_upstream_up{route,upstream}`,
/// `vigil_upstream_pairs_active{route,upstream}` and
/// `vigil_upstream_tries_total{route,upstream,result}`. A member a reload removes takes its
/// series with it (its pairs that live on no longer move them).
public final class UpstreamMetrics: Sendable {
    private let collectors: PrometheusCollectorRegistry
    private let series = NIOLockedValueBox<[Member: Series]>([:])

    public struct Member: Sendable, Hashable {
        public var route: String
        public var name: String

        public init(route: String, name: String) {
            self.route = route
            self.name = name
        }
    }

    private final class Series: Sendable {
        let up: Gauge
        let pairs: Gauge
        let tries = NIOLockedValueBox<[String: Counter]>([:])

        init(up: Gauge, pairs: Gauge) {
            self.up = up
            self.pairs = pairs
        }
    }

    init(collectors: PrometheusCollectorRegistry) {
        self.collectors = collectors
    }

    /// Creates the member's series, up until a try says otherwise.
    public func add(_ member: Member) {
        series.withLockedValue { all in
            guard all[member] == nil else { return }
            let labels = [("route", member.route), ("upstream", member.name)]
            let up = collectors.makeGauge(
                descriptor: .init(
                    namespace: "vigil", metricName: "upstream", unitName: "up",
                    helpText: "1 while the proxy route's pool member is taking pairs, 0 while it is marked down"),
                labels: labels)
            up.set(to: 1)
            all[member] = Series(
                up: up,
                pairs: collectors.makeGauge(
                    descriptor: .init(
                        namespace: "vigil", metricName: "upstream_pairs", unitName: "active",
                        helpText: "Proxied pairs open (or being opened) to the pool member"),
                    labels: labels))
        }
    }

    public func remove(_ member: Member) {
        guard let removed = series.withLockedValue({ $0.removeValue(forKey: member) }) else { return }
        collectors.unregisterGauge(removed.up)
        collectors.unregisterGauge(removed.pairs)
        for counter in removed.tries.withLockedValue({ Array($0.values) }) { collectors.unregisterCounter(counter) }
    }

    public func setUp(_ member: Member, _ up: Bool) {
        series.withLockedValue { $0[member] }?.up.set(to: up ? 1 : 0)
    }

    public func setPairs(_ member: Member, _ pairs: Int) {
        series.withLockedValue { $0[member] }?.pairs.set(to: Double(pairs))
    }

    /// One try: `ok`, `refused` (an HTTP answer other than 101, passed on), `timeout`, or `failed`.
    public func countTry(_ member: Member, result: String) {
        guard let owner = series.withLockedValue({ $0[member] }) else { return }
        owner.tries.withLockedValue { tries in
            if let existing = tries[result] { return existing }
            let created = collectors.makeCounter(
                descriptor: .init(
                    namespace: "vigil", metricName: "upstream_tries", unitName: "total",
                    helpText: "Upstream handshakes tried for clients, by pool member and result"),
                labels: [("route", member.route), ("upstream", member.name), ("result", result)])
            tries[result] = created
            return created
        }.increment()
    }
}
