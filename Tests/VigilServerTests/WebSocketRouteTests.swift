import NIOHTTP1
import Testing
import VigilHost

@testable import VigilServer

@Suite("The WebSocket route: request targets and client names")
struct WebSocketRouteTests {
    let route = WebSocketRoute(path: "/ws")

    @Test("the path is compared byte for byte; the client name is percent-decoded")
    func matching() throws {
        #expect(try route.match(method: .GET, uri: "/ws?client=kiosk%203&x=1").get() == "kiosk 3")
        #expect(try route.match(method: .GET, uri: "/ws").get() == nil)
        #expect(try route.match(method: .GET, uri: "/ws?").get() == nil)
        #expect(try route.match(method: .GET, uri: "/ws?&&client=a&").get() == "a")
        for uri in ["/ws/", "/WS", "/w\u{301}s", "/ws#x?client=a"] {
            #expect(throws: HandshakeRejection.self) { try route.match(method: .GET, uri: uri).get() }
        }
        // "é" composed and decomposed are canonically equal Strings but different bytes.
        let accented = WebSocketRoute(path: "/caf\u{E9}")
        #expect(throws: HandshakeRejection.self) { try accented.match(method: .GET, uri: "/cafe\u{301}").get() }
        #expect(try accented.match(method: .GET, uri: "/caf\u{E9}").get() == nil)
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
