import NIOConcurrencyHelpers
import Prometheus
import VigilSupervisor

/// The monitor targets' series, in the registry's own collector registry:
/// `vigil_target_up{target}`, `vigil_target_connect_attempts_total{target,result}`,
/// `vigil_target_rtt_seconds{target}`, `vigil_target_reply_seconds{target}` and
/// `vigil_target_closes_total{target,kind,cause}`. A target removed by a reload takes its
/// series with it.
public final class TargetMetrics: Sendable {
    private let collectors: PrometheusCollectorRegistry
    private let series = NIOLockedValueBox<[String: Series]>([:])

    private final class Series: Sendable {
        let critical: Bool
        let up: Gauge
        let roundTrip: DurationHistogram
        let reply: DurationHistogram
        let counters = NIOLockedValueBox<[[String]: Counter]>([:])

        init(critical: Bool, up: Gauge, roundTrip: DurationHistogram, reply: DurationHistogram) {
            self.critical = critical
            self.up = up
            self.roundTrip = roundTrip
            self.reply = reply
        }
    }

    /// Request-to-reply buckets: the RTT's, and up to 30 s for slow applications.
    static let replyBuckets = RegistryMetrics.roundTripBuckets + [.seconds(30)]

    init(collectors: PrometheusCollectorRegistry) {
        self.collectors = collectors
    }

    /// Creates the target's series (up = 0) if it has none yet; `critical` labels its
    /// `vigil_target_up` so an alert can page for critical targets only.
    public func add(target: String, critical: Bool) {
        if let existing = series.withLockedValue({ $0[target] }), existing.critical != critical {
            remove(target: target)  // a reload changed it: the label must follow
        }
        _ = series(for: target, critical: critical)
    }

    /// Removes every series of a target that is no longer configured.
    public func remove(target: String) {
        guard let removed = series.withLockedValue({ $0.removeValue(forKey: target) }) else { return }
        collectors.unregisterGauge(removed.up)
        collectors.unregisterDurationHistogram(removed.roundTrip)
        collectors.unregisterDurationHistogram(removed.reply)
        for counter in removed.counters.withLockedValue({ Array($0.values) }) { collectors.unregisterCounter(counter) }
    }

    public func setUp(target: String, _ up: Bool) {
        series.withLockedValue { $0[target] }?.up.set(to: up ? 1.0 : 0.0)
    }

    /// One dial attempt: `result` is `ok`, or the failed phase (`dns`, `tcp`, `tls`, `timeout`,
    /// `http`, `handshake`).
    public func countAttempt(target: String, result: String) {
        counter(
            target, ["attempt", result], name: "target_connect_attempts",
            help: "Monitor target dial attempts by result",
            labels: [("target", target), ("result", result)]
        )?.increment()
    }

    public func recordRoundTrip(target: String, _ roundTrip: Duration) {
        series.withLockedValue { $0[target] }?.roundTrip.recordNanoseconds(roundTrip.inNanoseconds)
    }

    public func recordReply(target: String, _ reply: Duration) {
        series.withLockedValue { $0[target] }?.reply.recordNanoseconds(reply.inNanoseconds)
    }

    func countClose(target: String, _ outcome: CloseOutcome) {
        counter(
            target, ["close", outcome.kind.rawValue, outcome.cause.rawValue], name: "target_closes",
            help: "Monitor target connections closed, by kind and cause",
            labels: [("target", target), ("kind", outcome.kind.rawValue), ("cause", outcome.cause.rawValue)]
        )?.increment()
    }

    private func series(for target: String, critical: Bool) -> Series {
        series.withLockedValue { all in
            if let existing = all[target] { return existing }
            let created = Series(
                critical: critical,
                up: collectors.makeGauge(
                    descriptor: .init(
                        namespace: "vigil", metricName: "target", unitName: "up",
                        helpText: "1 while the monitor target's connection is up, else 0"),
                    labels: [("target", target), ("critical", critical ? "true" : "false")]),
                roundTrip: collectors.makeDurationHistogram(
                    descriptor: .init(
                        namespace: "vigil", metricName: "target_rtt", unitName: "seconds",
                        helpText: "Ping to matching pong round trip of monitor target connections"),
                    labels: [("target", target)], buckets: RegistryMetrics.roundTripBuckets),
                reply: collectors.makeDurationHistogram(
                    descriptor: .init(
                        namespace: "vigil", metricName: "target_reply", unitName: "seconds",
                        helpText: "Monitor target command request to matching reply"),
                    labels: [("target", target)], buckets: Self.replyBuckets))
            all[target] = created
            return created
        }
    }

    /// A counter of the target's, created on first use; `nil` once the target was removed (its
    /// last connection's close arrives after the removal and must not bring the series back).
    private func counter(_ target: String, _ key: [String], name: String, help: String, labels: [(String, String)])
        -> Counter?
    {
        guard let owner = series.withLockedValue({ $0[target] }) else { return nil }
        return owner.counters.withLockedValue { counters in
            if let existing = counters[key] { return existing }
            let created = collectors.makeCounter(
                descriptor: .init(namespace: "vigil", metricName: name, unitName: "total", helpText: help),
                labels: labels)
            counters[key] = created
            return created
        }
    }
}
