import NIOConcurrencyHelpers
import Prometheus
import VigilSupervisor

#if canImport(Glibc)
    import Glibc
#endif

/// The Prometheus side of the registry: a private collector registry per `ConnectionRegistry`
/// (no global bootstrap, so several servers can live in one test process).
public final class RegistryMetrics: Sendable {
    public let collectors = PrometheusCollectorRegistry()
    /// Per leg (`client`, `upstream`, `target`), every leg's series present from the start at 0:
    /// `max_connections` limits client legs only, and an upstream's round trip is the backend's,
    /// not the clients'.
    let active: PerLeg<Gauge>
    let opened: PerLeg<Counter>
    let roundTrip: PerLeg<DurationHistogram>
    /// Application-level pings go to client legs only.
    let appRoundTrip: DurationHistogram
    /// The monitor targets' series.
    public let targets: TargetMetrics
    /// The proxy routes' pool members' series.
    public let upstreams: UpstreamMetrics
    /// Labelled counters are created on first use and cached (creation takes the registry's lock).
    private let closes = NIOLockedValueBox<[KindAndCause: Counter]>([:])
    private let rejections = NIOLockedValueBox<[HandshakeRejectionReason: Counter]>([:])
    private let tlsFailures = NIOLockedValueBox<[TLSHandshakeFailureReason: Counter]>([:])
    /// Reloads that kept the running TLS certificates because a new file was bad (one key).
    private let tlsReloadFailures = NIOLockedValueBox<[Bool: Counter]>([:])
    private let proxyHeaders = NIOLockedValueBox<[String: Counter]>([:])
    /// `vigil_tls_certificate_not_after_seconds`, one series per certificate file served.
    private let tlsExpiry = NIOLockedValueBox<[String: Gauge]>([:])

    private struct KindAndCause: Hashable {
        var kind: CloseKind
        var cause: CloseCause
        var leg: ConnectionLeg
    }

    /// RTT buckets from 0.5 ms (loopback) to 10 s (the default pong timeout).
    static let roundTripBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    init(maxConnections: Int) {
        let limit = collectors.makeGauge(
            descriptor: .init(
                namespace: "vigil", metricName: "connections", unitName: "max",
                helpText: "max_connections: client connections vigild admits at most"))
        limit.set(to: Double(maxConnections))
        let started = collectors.makeGauge(
            descriptor: .init(
                namespace: "vigil", metricName: "start_time", unitName: "seconds",
                helpText: "When this vigild process started, in seconds since the epoch (a change is a restart)"))
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        started.set(to: Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
        let collectors = self.collectors  // the closures below run before self is whole
        active = PerLeg { leg in
            collectors.makeGauge(
                descriptor: .init(
                    namespace: "vigil", metricName: "connections", unitName: "active",
                    helpText: "WebSocket connections currently open, by leg"),
                labels: [("leg", leg.rawValue)])
        }
        opened = PerLeg { leg in
            collectors.makeCounter(
                descriptor: .init(
                    namespace: "vigil", metricName: "connections_opened", unitName: "total",
                    helpText: "WebSocket connections upgraded since start, by leg"),
                labels: [("leg", leg.rawValue)])
        }
        roundTrip = PerLeg { leg in
            collectors.makeDurationHistogram(
                descriptor: .init(
                    namespace: "vigil", metricName: "ping_rtt", unitName: "seconds",
                    helpText: "Ping to matching pong round trip, by leg"),
                labels: [("leg", leg.rawValue)], buckets: Self.roundTripBuckets)
        }
        appRoundTrip = collectors.makeDurationHistogram(
            descriptor: .init(
                namespace: "vigil", metricName: "app_rtt", unitName: "seconds",
                helpText: "Application-level ping (app_ping_message) to its reply (app_pong_message)"),
            buckets: Self.roundTripBuckets)
        targets = TargetMetrics(collectors: collectors)
        upstreams = UpstreamMetrics(collectors: collectors)
    }

    func countClose(_ outcome: CloseOutcome, leg: ConnectionLeg) {
        let key = KindAndCause(kind: outcome.kind, cause: outcome.cause, leg: leg)
        counter(
            in: closes, for: key, name: "closes", help: "Closed WebSocket connections by kind, cause and leg",
            labels: [("kind", key.kind.rawValue), ("cause", key.cause.rawValue), ("leg", leg.rawValue)]
        ).increment()
    }

    func countRejection(_ reason: HandshakeRejectionReason) {
        counter(
            in: rejections, for: reason, name: "handshakes_rejected", help: "WebSocket handshakes refused, by reason",
            labels: [("reason", reason.rawValue)]
        ).increment()
    }

    func countTLSFailure(_ reason: TLSHandshakeFailureReason) {
        counter(
            in: tlsFailures, for: reason, name: "tls_handshakes_failed",
            help: "TLS handshakes on the WebSocket listener that failed, by reason",
            labels: [("reason", reason.rawValue)]
        ).increment()
    }

    /// Replaces the expiry series with one per certificate in `certificates`.
    func setTLSCertificates(_ certificates: [(file: String, notValidAfter: Int)]) {
        tlsExpiry.withLockedValue { gauges in
            for (file, gauge) in gauges where !certificates.contains(where: { $0.file == file }) {
                collectors.unregisterGauge(gauge)
                gauges[file] = nil
            }
            for (file, notValidAfter) in certificates {
                let gauge =
                    gauges[file]
                    ?? collectors.makeGauge(
                        descriptor: .init(
                            namespace: "vigil", metricName: "tls_certificate_not_after", unitName: "seconds",
                            helpText: "When a certificate the TLS listener serves expires, in seconds since the epoch"),
                        labels: [("cert_file", file)])
                gauges[file] = gauge
                gauge.set(to: Double(notValidAfter))
            }
        }
    }

    func countProxyHeader(_ result: String) {
        counter(
            in: proxyHeaders, for: result, name: "proxy_protocol_headers",
            help:
                "PROXY protocol headers read: proxy (the client's address, believed), local (a balancer's health check: no client named, the balancer's own connection, or a connection reset before its address was read), untrusted (from a peer not in trusted_proxies, ignored)",
            labels: [("result", result)]
        ).increment()
    }

    func countTLSCertificateReloadFailure() {
        counter(
            in: tlsReloadFailures, for: true, name: "tls_certificate_reload_failures",
            help:
                "Reloads that kept the running TLS certificates because a new file was unreadable, invalid, expired or did not match its key",
            labels: []
        ).increment()
    }

    /// `vigil_<name>_total{labels}`, created on first use and cached.
    private func counter<Key: Hashable & Sendable>(
        in cache: NIOLockedValueBox<[Key: Counter]>, for key: Key, name: String, help: String,
        labels: [(String, String)]
    ) -> Counter {
        cache.withLockedValue { cache in
            if let counter = cache[key] { return counter }
            let counter = collectors.makeCounter(
                descriptor: .init(namespace: "vigil", metricName: name, unitName: "total", helpText: help),
                labels: labels)
            cache[key] = counter
            return counter
        }
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> [UInt8] {
        collectors.emitToBuffer()
    }
}

/// One value per leg, picked by a switch: read on every open, close and pong, so no hashing.
struct PerLeg<Value: Sendable>: Sendable {
    let client: Value
    let upstream: Value
    let target: Value

    init(_ make: (ConnectionLeg) -> Value) {
        client = make(.client)
        upstream = make(.upstream)
        target = make(.target)
    }

    subscript(leg: ConnectionLeg) -> Value {
        switch leg {
        case .client: client
        case .upstream: upstream
        case .target: target
        }
    }
}
