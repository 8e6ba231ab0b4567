import Logging
import NIOHTTP1
import Testing
import VigilConfig
import VigilRegistry
import VigilSupervisor

@testable import VigilClient
@testable import VigilProxy

@Suite("Proxy: what goes upstream, and how one leg's end closes the other")
struct ProxyRulesTests {
    func rules(_ upstream: String, path: UpstreamPath = .append) throws -> ProxyRules {
        let settings = try SettingsLoader.resolve(
            flags: ["mode": "proxy", "upstream": upstream, "upstream_path": path.rawValue], environment: [:], file: nil
        ).settings
        return try Self.rules(for: try #require(settings.routeTable.first), settings: settings)
    }

    static func rules(for route: RouteEntry, settings: VigilSettings) throws -> ProxyRules {
        let registry = ConnectionRegistry(maxConnections: 10, closeHistory: 10, now: MonotonicInstant(nanoseconds: 0))
        let pool = UpstreamPool(
            route: route, metrics: registry.metrics.upstreams,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return try ProxyRules.make(route, settings: settings, pool: pool)
    }

    /// The request sent to the rules' only upstream.
    func forwarded(_ head: HTTPRequestHead, rules: ProxyRules, address: String = "10.0.0.7", scheme: String = "http")
        -> UpgradeRequest
    {
        ForwardedRequest.make(
            for: head, to: rules.pool.members[0].url, clientAddress: address, scheme: scheme, rules: rules)
    }

    @Test(
        "the target: upstream path, then the client's; upstream query, then the client's",
        arguments: [
            ("ws://b:3000/socket", "/", "/socket"),
            ("ws://b:3000/socket", "/chat?room=1", "/socket/chat?room=1"),
            ("ws://b:3000/socket/", "/chat", "/socket/chat"),
            ("ws://b:3000", "/", "/"),
            ("ws://b:3000", "/ws?client=k", "/ws?client=k"),
            ("ws://b:3000/s?v=2", "/x?a=1", "/s/x?v=2&a=1"),
            ("ws://b:3000/s?v=2", "/", "/s?v=2"),
        ])
    func appended(upstream: String, client: String, expected: String) throws {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: client)
        #expect(
            forwarded(head, rules: try rules(upstream), address: "10.0.0.7", scheme: "http")
                .target == expected)
    }

    @Test(
        "a route's prefix is replaced by the upstream URL's path; an upstream URL without a path takes the client's as it came",
        arguments: [
            ("/feed", "ws://b/stream", "/feed/x?q=1", "/stream/x?q=1"),
            ("/feed", "ws://b/stream", "/feed", "/stream"),
            ("/feed", "ws://b/stream/", "/feed", "/stream/"),
            ("/feed", "ws://b/stream/", "/feed/x", "/stream/x"),
            ("/feed", "ws://b/", "/feed/x", "/x"),
            ("/feed", "ws://b/", "/feed", "/"),
            ("/feed", "ws://b:3000", "/feed/x?q=1", "/feed/x?q=1"),
            ("/feed", "ws://b/s?v=2", "/feed/x?a=1", "/s/x?v=2&a=1"),
            ("/", "ws://b/socket", "/", "/socket"),
            ("/", "ws://b/socket", "/chat?room=1", "/socket/chat?room=1"),
        ])
    func routed(route: String, upstream: String, client: String, expected: String) throws {
        let yaml = "routes:\n  - path: \(route)\n    upstream: \(upstream)\n"
        let settings = try SettingsLoader.resolve(
            flags: [:], environment: [:], file: ConfigFile.parse(yaml, path: "/etc/vigil.yaml")
        ).settings
        let rules = try Self.rules(for: settings.routes[0], settings: settings)
        #expect(
            forwarded(HTTPRequestHead(version: .http1_1, method: .GET, uri: client), rules: rules).target == expected)
    }

    @Test("the route / with a URL's path is upstream_path: append")
    func appendIsTheRootRoute() throws {
        for (upstream, client) in [
            ("ws://b:3000/socket", "/chat?room=1"), ("ws://b:3000/s?v=2", "/"), ("ws://b", "/x"),
        ] {
            let yaml = "routes:\n  - path: /\n    upstream: \(upstream)\n"
            let settings = try SettingsLoader.resolve(
                flags: [:], environment: [:], file: ConfigFile.parse(yaml, path: "/etc/vigil.yaml")
            ).settings
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: client)
            #expect(
                forwarded(head, rules: try Self.rules(for: settings.routes[0], settings: settings)).target
                    == forwarded(head, rules: try rules(upstream)).target)
        }
    }

    @Test("upstream_path fixed: always the upstream URL's own path and query")
    func fixed() throws {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/anything?x=1")
        #expect(
            forwarded(head, rules: try rules("ws://b/s?v=2", path: .fixed), address: "10.0.0.7", scheme: "http")
                .target == "/s?v=2")
    }

    @Test(
        "end-to-end headers go upstream; hop-by-hop, handshake and extension headers do not; X-Forwarded-* and Forwarded are added"
    )
    func headers() throws {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        for (name, value) in [
            ("Host", "vigil.example:8080"), ("Upgrade", "websocket"), ("Connection", "Upgrade, X-Drop-Me"),
            ("Sec-WebSocket-Key", "k"), ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "a, b"),
            ("Sec-WebSocket-Protocol", "c"), ("Sec-WebSocket-Extensions", "permessage-deflate"), ("Cookie", "s=1"),
            ("Authorization", "Bearer t"), ("Origin", "https://app"), ("X-Drop-Me", "1"), ("Keep-Alive", "5"),
            ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"), ("Forwarded", "for=203.0.113.9"),
        ] {
            head.headers.add(name: name, value: value)
        }
        let request = forwarded(head, rules: try rules("ws://b/"), address: "2001:db8::1", scheme: "http")
        #expect(request.subprotocols == ["a", "b", "c"])
        let sent = request.headers.map { "\($0.name): \($0.value)" }
        #expect(
            sent == [
                "Cookie: s=1", "Authorization: Bearer t", "Origin: https://app",
                "X-Forwarded-For: 203.0.113.9, 2001:db8::1", "X-Forwarded-Proto: http",
                "X-Forwarded-Host: vigil.example:8080",
                "Forwarded: for=203.0.113.9, for=\"[2001:db8::1]\";host=\"vigil.example:8080\";proto=http",
            ])
        // A client that came over TLS: https in both, whatever an untrusted X-Forwarded-Proto said.
        let overTLS = forwarded(head, rules: try rules("ws://b/"), address: "2001:db8::1", scheme: "https").headers.map
        { "\($0.name): \($0.value)" }
        #expect(overTLS.contains("X-Forwarded-Proto: https"))
        #expect(overTLS.last?.hasSuffix(";proto=https") == true)
    }

    @Test("the request head never carries a header that could split it")
    func safeHead() {
        let request = UpgradeRequest(
            url: WebSocketURL(secure: false, host: "b", port: 3000), target: "/x",
            headers: [
                HTTPHeaderField(name: "X-Ok", value: "fine"), HTTPHeaderField(name: "X-Bad", value: "a\r\nInjected: 1"),
                HTTPHeaderField(name: "Bad Name", value: "v"), HTTPHeaderField(name: "Host", value: "evil"),
            ])
        let head = request.head(key: "key==")
        #expect(head.contains("\r\nX-Ok: fine\r\n"))
        #expect(!head.contains("Injected") && !head.contains("Bad Name") && !head.contains("evil"))
        #expect(head.hasPrefix("GET /x HTTP/1.1\r\nHost: b:3000\r\n") && head.hasSuffix("\r\n\r\n"))
    }

    @Test("a close frame is relayed with its code and reason; 1005 as an empty close frame")
    func relayedClose() {
        let client = RelaySink.pair(upstreamFailureCode: 1014).client
        let close = client.closeForPartner(
            after: CloseOutcome(
                kind: .error, code: 4000, cause: .remoteClose, initiator: .remote, clean: true, reason: "bye"))
        #expect(
            close
                == LocalClose(
                    code: 4000, reason: "bye", cause: .partnerClosed,
                    partner: PartnerEnding(kind: .error, cause: .remoteClose)))
        let empty = client.closeForPartner(
            after: CloseOutcome(
                kind: .normal, code: 1005, cause: .remoteClose, initiator: .remote, clean: true, reason: ""))
        #expect(empty?.code == nil)
    }

    @Test("a leg that fails closes its partner with a real code: 1014 to the client, 1001 to the upstream")
    func failures() {
        let (client, upstream) = RelaySink.pair(upstreamFailureCode: 1014)
        for cause in [
            CloseCause.eof, .reset, .pongTimeout, .readDeadline, .truncatedFrame, .slowConsumer, .protocolError,
        ] {
            let ending = CloseOutcome(
                kind: .abnormal, code: 1006, cause: cause, initiator: .local, clean: false, reason: "")
            #expect(upstream.closeForPartner(after: ending)?.code == 1014)
            #expect(upstream.closeForPartner(after: ending)?.reason == "upstream leg ended: \(cause.rawValue)")
            #expect(client.closeForPartner(after: ending)?.code == 1001)
            #expect(client.closeForPartner(after: ending)?.partner == PartnerEnding(kind: .abnormal, cause: cause))
        }
        let partner = CloseOutcome(
            kind: .normal, code: 1000, cause: .partnerClosed, initiator: .local, clean: true, reason: "")
        #expect(client.closeForPartner(after: partner) == nil, "the partner started it")
        let shutdown = CloseOutcome(
            kind: .goingAway, code: 1001, cause: .shutdown, initiator: .local, clean: true,
            reason: "upstream chat-2 of route chat is drained")
        #expect(
            client.closeForPartner(after: shutdown)
                == LocalClose(code: 1001, reason: "upstream chat-2 of route chat is drained", cause: .shutdown),
            "the partner hears why: vigild stopping, or the member drained")
    }

    @Test("refusals: the upstream's own status and headers, 504 for silence, 502 for the rest")
    func rejections() throws {
        let rules = try rules("ws://b:3000/")
        let refused = UpstreamDial.rejection(
            for: DialFailure.refused(
                HTTPRefusal(
                    status: 401, reason: "Unauthorized",
                    headers: [
                        HTTPHeaderField(name: "WWW-Authenticate", value: "Bearer"),
                        HTTPHeaderField(name: "Set-Cookie", value: "x"),
                        HTTPHeaderField(name: "Content-Type", value: "application/json"),
                    ], body: Array(#"{"error":"no"}"#.utf8))), upstream: rules.pool.members[0].url)
        #expect(refused.status.code == 401 && refused.reason == .upstreamRefused)
        #expect(refused.extraHeaders.map(\.0) == ["WWW-Authenticate"])
        #expect(refused.body?.contentType == "application/json")
        let timeout = UpstreamDial.rejection(
            for: DialFailure.timeout(phase: "upgrade", after: .seconds(5)), upstream: rules.pool.members[0].url)
        #expect(timeout.status == .gatewayTimeout && timeout.reason == .upstreamTimeout)
        #expect(timeout.message == "upstream ws://b:3000/: no answer within 5s (upgrade)")
        let refusedTCP = UpstreamDial.rejection(
            for: DialFailure.connection(reason: "Connection refused"), upstream: rules.pool.members[0].url)
        #expect(refusedTCP.status == .badGateway && refusedTCP.reason == .upstreamUnreachable)
    }
}
