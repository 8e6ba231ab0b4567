import Logging
import NIOHTTP1
import Testing
import VigilConfig
import VigilConnection
import VigilFraming
import VigilHost
import VigilRegistry
import VigilSupervisor

@testable import VigilServer

@Suite("The WebSocket routes: request targets, hosts and client names")
struct RouteTableTests {
    static func table(_ settings: VigilSettings) throws -> RouteTable {
        let registry = ConnectionRegistry(maxConnections: 10, closeHistory: 10, now: MonotonicInstant(nanoseconds: 0))
        let host = ConnectionHost(
            registry: registry, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            clock: .system, limits: FramingLimits(maxFrameSize: 1 << 16, maxMessageSize: 1 << 20),
            policy: settings.supervisionPolicy)
        return try RouteTable.make(settings, running: nil, host: host)
    }

    static func table(flags: [String: String] = [:], yaml: String? = nil) throws -> RouteTable {
        try table(
            SettingsLoader.resolve(
                flags: flags, environment: [:], file: try yaml.map { try ConfigFile.parse($0, path: "/etc/vigil.yaml") }
            ).settings)
    }

    /// The route a GET for `uri` with `host` takes, by name; or the refusal's status.
    func take(_ table: RouteTable, _ uri: String, host: String? = nil) -> String {
        switch table.match(method: .GET, uri: uri, host: host) {
        case .success(let (route, _)): route.name
        case .failure(let rejection): "\(rejection.status.code)"
        }
    }

    @Test("the single route: the path is compared byte for byte; the client name is percent-decoded")
    func matching() throws {
        let route = try Self.table(flags: ["path": "/ws"])
        func client(_ uri: String) throws -> String? { try route.match(method: .GET, uri: uri, host: nil).get().1 }
        #expect(try client("/ws?client=kiosk%203&x=1") == "kiosk 3")
        #expect(try client("/ws") == nil)
        #expect(try client("/ws?") == nil)
        #expect(try client("/ws?&&client=a&") == "a")
        for uri in ["/ws/", "/WS", "/w\u{301}s", "/ws#x?client=a"] {
            #expect(throws: HandshakeRejection.self) { try client(uri) }
        }
        #expect(take(try Self.table(flags: ["mode": "proxy", "upstream": "ws://b"]), "/any/path") == "/")
    }

    @Test("prefixes on / boundaries, the longest wins; / takes the rest")
    func prefixes() throws {
        let table = try Self.table(
            yaml: """
                routes:
                  - {path: /chat, mode: echo}
                  - {path: /chat/admin/, mode: command}
                  - {name: rest, path: /, mode: echo}
                """)
        #expect(take(table, "/chat") == "/chat")
        #expect(take(table, "/chat/") == "/chat")
        #expect(take(table, "/chat/x?client=a") == "/chat")
        #expect(take(table, "/chatroom") == "rest")
        #expect(take(table, "/chat/admin") == "/chat/admin")
        #expect(take(table, "/chat/admin/x") == "/chat/admin")
        #expect(take(table, "/chat/administrator") == "/chat")
        #expect(take(table, "/") == "rest")
        let noRoot = try Self.table(yaml: "routes:\n  - {path: /chat, mode: echo}\n")
        #expect(take(noRoot, "/chatroom") == "404")
        guard case .failure(let rejection) = noRoot.match(method: .GET, uri: "/chatroom", host: nil) else {
            Issue.record("taken")
            return
        }
        #expect(rejection.message == "no WebSocket route at /chatroom; the route is /chat/…")
    }

    @Test("hosts: routes naming the request's host first, else those for any host; the port and case do not count")
    func hosts() throws {
        let table = try Self.table(
            yaml: """
                routes:
                  - {name: feed, path: /feed, host: feed.example.com, mode: echo}
                  - {name: wild, path: /, host: "*.example.org", mode: echo}
                  - {name: any-feed, path: /feed, mode: echo}
                  - {name: any, path: /, mode: command}
                """)
        #expect(take(table, "/feed", host: "feed.example.com") == "feed")
        #expect(take(table, "/feed", host: "FEED.example.com.:8443") == "feed")
        #expect(take(table, "/other", host: "feed.example.com") == "404", "the host's routes only (nginx's server)")
        #expect(take(table, "/feed", host: "a.example.org") == "wild")
        #expect(take(table, "/feed", host: "example.org") == "any-feed")
        #expect(take(table, "/x", host: nil) == "any")
        #expect(take(table, "/feed", host: "[::1]:8080") == "any-feed")
    }

    @Test("an exact host before a wildcard, whatever the order in the file")
    func exactBeforeWildcard() throws {
        let table = try Self.table(
            yaml: """
                routes:
                  - {name: wild, path: /, host: "*.example.com", mode: echo}
                  - {name: app, path: /, host: app.example.com, mode: command}
                """)
        #expect(take(table, "/x", host: "app.example.com") == "app")
        #expect(take(table, "/x", host: "www.example.com") == "wild")
        #expect(take(table, "/x", host: "example.net") == "404")
        guard case .failure(let rejection) = table.match(method: .GET, uri: "/x", host: "example.net") else {
            Issue.record("taken")
            return
        }
        #expect(
            rejection.message == "no WebSocket route at /x for host example.net; no route serves that host",
            "another host's routes are not named")
    }

    @Test("a prefix route refuses . and .. segments, also percent-encoded; an exact route says 404")
    func dotSegments() throws {
        let table = try Self.table(yaml: "routes:\n  - {path: /public, upstream: ws://b/app}\n")
        for uri in ["/public/../admin", "/public/./x", "/public/%2e%2E/admin", "/public/x/%2E"] {
            #expect(take(table, uri) == "400", "\(uri)")
        }
        for uri in ["/public/..x", "/public/.well-known", "/public/a.b"] {
            #expect(take(table, uri) == "/public", "\(uri)")
        }
        #expect(take(try Self.table(flags: ["path": "/ws"]), "/ws/..") == "404")
    }

    @Test("Connection must list the upgrade token, in any case, alone or among others")
    func connectionToken() {
        for value in ["Upgrade", "upgrade", "keep-alive, Upgrade", " UPGRADE\t,close", "a,,upgrade"] {
            #expect(HandshakeRejection.hasToken("upgrade", in: value), "\(value)")
        }
        for value in [
            "", "Urpgade", "upgrades", "keep-alive upgrade", "\"upgrade\"", "Sec-WebSocket-Version: 13", "upgrad",
        ] {
            #expect(!HandshakeRejection.hasToken("upgrade", in: value), "\(value)")
        }
        var headers = HTTPHeaders([
            ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg=="),
            ("Sec-WebSocket-Version", "13"),
        ])
        #expect(HandshakeRejection.checkHeaders(headers)?.reason == .missingConnectionUpgrade)
        headers.add(name: "Connection", value: "keep-alive")
        #expect(HandshakeRejection.checkHeaders(headers)?.reason == .missingConnectionUpgrade)
        headers.add(name: "Connection", value: "Upgrade")  // a second line naming it
        #expect(HandshakeRejection.checkHeaders(headers) == nil)
    }
}
