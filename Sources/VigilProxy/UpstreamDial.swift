import NIOCore
import NIOHTTP1
import VigilClient
import VigilConfig
import VigilConnection
import VigilFraming
import VigilHost
import VigilRegistry
import VigilSupervisor
import VigilText

/// Opens a client's upstream leg before the client is answered: the client hears 101 with the
/// upstream's subprotocol only once an upstream of the route's pool said 101, or the upstream's
/// own refusal, or 502/504 when none answered.
public enum UpstreamDial {
    /// An upstream leg that answered, and the two relay halves that will join it to its client.
    public struct Opened {
        public let pair: PairLink
        public let clientSink: RelaySink
        public let upstreamSink: RelaySink
        /// What the upstream chose of the client's `Sec-WebSocket-Protocol` offer.
        public let subprotocol: String?
        /// The permessage-deflate the upstream agreed to, as the client is told it: both legs
        /// relay compressed messages as they are.
        public let compression: PerMessageDeflate.Agreement?
    }

    /// Dials an upstream of the route's pool for the client's `request` on the client's own
    /// event loop (`channel`), so both legs of the pair run on one thread: the members in the
    /// pool's order, each within `upstream_try_timeout` (the last one left gets what remains of
    /// `upstream_connect_timeout`), until one answers. A member that does not answer rests
    /// (`PoolBalancer`) and the client never hears of it; an HTTP refusal is the client's
    /// answer, not tried elsewhere. Fails with the `HandshakeRejection` the client gets.
    /// `hop`: the address vigild received the request from (the client, or the trusted
    /// balancer that appended the client to the request's `X-Forwarded-For`), which it appends
    /// in turn; `scheme`: how the client came (`https` over TLS).
    public static func open(
        _ rules: ProxyRules, for request: HTTPRequestHead, client: String?, hop: String, scheme: String,
        channel: any Channel, host: ConnectionHost
    ) -> EventLoopFuture<Opened> {
        let start = host.clock.now()
        let attempt = Attempt(
            rules: rules, request: request, client: client, hop: hop, scheme: scheme, channel: channel, host: host,
            plan: rules.pool.plan(at: start), deadline: start + rules.connectTimeout)
        return attempt.next()
    }

    /// One client's handshake going through the pool's members in turn.
    private final class Attempt {
        let rules: ProxyRules
        let request: HTTPRequestHead
        let client: String?
        let hop: String
        let scheme: String
        let channel: any Channel
        let host: ConnectionHost
        let plan: [UpstreamPool.Candidate]
        let deadline: MonotonicInstant
        /// The try that may use all that remains of `upstream_connect_timeout`: the last member
        /// that is up (a pool of one: its only member; none up: the last), so that a member
        /// known to be down, resting or tried again, cannot cut a healthy one's try short; each
        /// other try has `upstream_try_timeout`.
        let budgetHolder: Int
        var tried = 0
        /// Members a reload took out of the pool (or drained) while this handshake went on.
        var skipped = 0
        /// What each failed member said, for the client's 502/504.
        var failures: [(UpstreamPool.Candidate, DialFailure?, String)] = []

        init(
            rules: ProxyRules, request: HTTPRequestHead, client: String?, hop: String, scheme: String,
            channel: any Channel, host: ConnectionHost, plan: [UpstreamPool.Candidate], deadline: MonotonicInstant
        ) {
            self.rules = rules
            self.request = request
            self.client = client
            self.hop = hop
            self.scheme = scheme
            self.channel = channel
            self.host = host
            self.plan = plan
            self.deadline = deadline
            self.budgetHolder = plan.lastIndex { !$0.down } ?? plan.count - 1
        }

        func next() -> EventLoopFuture<Opened> {
            let eventLoop = channel.eventLoop
            let now = host.clock.now()
            let remaining = deadline - now
            guard channel.isActive else {
                return eventLoop.makeFailedFuture(
                    HandshakeRejection(
                        status: .badGateway, reason: .upstreamUnreachable,
                        message: "the client went away while route \(rules.route)'s upstreams were tried"))
            }
            guard plan.count > tried, remaining > .zero else {
                return eventLoop.makeFailedFuture(giveUp(timedOut: remaining <= .zero))
            }
            let index = tried
            let candidate = plan[index]
            tried += 1
            guard let lease = rules.pool.lease(candidate) else {
                skipped += 1  // a reload took it out meanwhile
                return next()
            }
            // In whole milliseconds (rounded: the microseconds since the plan are not the
            // operator's), so that messages say 5s, not 4.999978s.
            let left = Duration.milliseconds((remaining / .milliseconds(1)).rounded())
            let timeout = index == budgetHolder ? left : min(rules.tryTimeout, left)
            let promise = eventLoop.makePromise(of: Opened.self)
            dial(candidate, timeout: timeout, lease: lease).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let opened) where !self.rules.pool.takesPairs(candidate):
                    // A reload drained or removed the member while it answered: its pair would
                    // outlive the drain that already ran. The next member takes the client.
                    self.rules.pool.answered(candidate, result: "ok")
                    opened.upstreamSink.connection?.close(
                        LocalClose(
                            code: CloseStatus.goingAway,
                            reason:
                                "upstream \(candidate.name) of route \(self.rules.route) left the pool as the pair opened",
                            cause: .shutdown))
                    self.skipped += 1
                    self.next().assumeIsolated().whenComplete { promise.assumeIsolated().completeWith($0) }
                case .success(let opened):
                    self.rules.pool.answered(candidate, result: "ok")
                    promise.assumeIsolated().succeed(opened)
                case .failure(let error):
                    lease.release()
                    let failure = error as? DialFailure
                    if case .refused = failure {
                        self.rules.pool.answered(candidate, result: "refused")
                        promise.fail(UpstreamDial.rejection(for: error, upstream: candidate.url))
                        return
                    }
                    var timedOut = false
                    if case .timeout = failure { timedOut = true }
                    // Silence within less than a try's time (what was left of the budget) is not
                    // the member's fault: counted, not rested.
                    self.rules.pool.failed(
                        candidate, timedOut: timedOut, because: "\(error)", at: self.host.clock.now(),
                        rests: !timedOut || timeout >= self.rules.tryTimeout)
                    self.failures.append((candidate, failure, "\(error)"))
                    self.next().assumeIsolated().whenComplete { promise.assumeIsolated().completeWith($0) }
                }
            }
            return promise.futureResult
        }

        /// What the client hears when no member answered: 504 when the last one did not answer
        /// in time (or no time was left), else 502; the message names every member tried. A
        /// pool of one reads as a single upstream always did.
        func giveUp(timedOut: Bool) -> HandshakeRejection {
            if failures.isEmpty && !timedOut {
                return HandshakeRejection(
                    status: .badGateway, reason: .upstreamUnreachable,
                    message: "route \(rules.route) has no upstream to take new pairs (every member is drained)")
            }
            if plan.count == 1, failures.count == 1, let error = failures[0].1 {
                return UpstreamDial.rejection(for: error, upstream: failures[0].0.url)
            }
            let tries = failures.map { "\($0.0.name) \($0.0.url): \($0.2)" }.joined(separator: "; ")
            var lastTimedOut = timedOut
            if case .timeout = failures.last?.1 { lastTimedOut = true }
            let untried = plan.count - failures.count - skipped
            let message =
                "no upstream of route \(rules.route) answered (\(tries))"
                + (untried > 0
                    ? "; \(untried) more not tried: upstream_connect_timeout (\(DurationText.setting(rules.connectTimeout))) ran out"
                    : "")
            return HandshakeRejection(
                status: lastTimedOut ? .gatewayTimeout : .badGateway,
                reason: lastTimedOut ? .upstreamTimeout : .upstreamUnreachable, message: message)
        }

        /// Dials one member within `timeout`; its upstream leg holds `lease` until it closes.
        func dial(_ candidate: UpstreamPool.Candidate, timeout: Duration, lease: UpstreamPool.Lease)
            -> EventLoopFuture<Opened>
        {
            let eventLoop = channel.eventLoop
            let (rules, host, client) = (self.rules, self.host, self.client)
            let pair = PairLink(
                pairID: host.registry.makePairID(), upstream: candidate.url.description, route: rules.route,
                member: candidate.name)
            let (clientSink, upstreamSink) = RelaySink.pair(upstreamFailureCode: rules.failureCode)
            var upgrade = ForwardedRequest.make(
                for: request, to: candidate.url, clientAddress: hop, scheme: scheme, rules: rules)
            if rules.compression {
                // Only the permessage-deflate offers vigild can parse: vigild must know what every
                // RSV bit means on both legs, so other extensions are not passed on.
                upgrade.extensions = .forwarded(
                    PerMessageDeflate.offers(in: request.headers["sec-websocket-extensions"]).map(\.headerValue))
            }
            let forwarded = upgrade
            // Backends commonly send a message as one frame: the upstream leg takes frames up to
            // max_message (still the bound on what one message holds); towards the client vigild
            // re-frames within max_frame.
            let upstreamLimits = FramingLimits(
                maxFrameSize: max(host.limits.maxFrameSize, min(host.limits.maxMessageSize, Int(UInt32.max))),
                maxMessageSize: host.limits.maxMessageSize)
            var configuration = SupervisedConnectionHandler.Configuration(
                role: .client, policy: rules.upstreamPolicy, limits: upstreamLimits)
            configuration.answersPings = false  // the client's pings go through to the backend
            let sinkBox = NIOLoopBound(upstreamSink, eventLoop: eventLoop)
            let dialed = WebSocketDialer.dial(
                forwarded, on: eventLoop, timeout: timeout, tls: rules.tls, configuration: configuration,
                wheels: host.wheels,
                makeParts: { upstreamChannel, answer in
                    host.channels.add(
                        upstreamChannel,
                        kind: .upstream(route: rules.route, member: candidate.name, url: candidate.url),
                        whenClosed: lease.release)
                    let identity = ConnectionIdentity(
                        peer: upstreamChannel.remoteAddress?.endpointDescription ?? candidate.url.hostHeader,
                        client: client, path: String(RequestTarget.split(forwarded.target).path), leg: .upstream,
                        pair: pair, compression: answer.compression?.headerValue, tls: answer.tls, route: rules.route)
                    let books = host.openBooks(identity, at: host.clock.now())
                    books.logger.debug("upstream leg opened", metadata: ["upstream": "\(candidate.url)"])
                    return (sinkBox.value, books.observer)
                })
            return dialed.assumeIsolated().map { connection in
                var compression = connection.compression
                if rules.appHeartbeat { compression?.clientNoContextTakeover = true }
                return Opened(
                    pair: pair, clientSink: clientSink, upstreamSink: upstreamSink,
                    subprotocol: connection.subprotocol, compression: compression)
            }.nonisolated()
        }
    }

    /// What the client hears when an upstream could not be opened: the upstream's own refusal
    /// (status, `Retry-After`, `WWW-Authenticate`, up to 4 KiB of body), 504 when it did not
    /// answer in time, 502 for everything else.
    static func rejection(for error: any Error, upstream url: WebSocketURL) -> HandshakeRejection {
        let upstream = url.description
        guard let failure = error as? DialFailure else {
            return HandshakeRejection(
                status: .badGateway, reason: .upstreamUnreachable, message: "upstream \(upstream): \(error)")
        }
        switch failure {
        case .refused(let refusal):
            var headers: [(String, String)] = []
            for name in ["Retry-After", "WWW-Authenticate"] {
                if let value = refusal.header(name) { headers.append((name, value)) }
            }
            let preview = String(decoding: refusal.body.prefix(200), as: UTF8.self)
            return HandshakeRejection(
                status: HTTPResponseStatus(statusCode: refusal.status, reasonPhrase: refusal.reason),
                reason: .upstreamRefused,
                message:
                    "upstream \(upstream) refused the upgrade: HTTP \(refusal.status) \(refusal.reason): \"\(Printable.escaped(preview))\"",
                extraHeaders: headers,
                body: (refusal.body, refusal.header("Content-Type") ?? "text/plain; charset=utf-8"))
        case .timeout:
            return HandshakeRejection(
                status: .gatewayTimeout, reason: .upstreamTimeout, message: "upstream \(upstream): \(failure)")
        default:
            return HandshakeRejection(
                status: .badGateway, reason: .upstreamUnreachable, message: "upstream \(upstream): \(failure)")
        }
    }
}
