import NIOHTTP1
import Testing
import VigilConfig

@testable import VigilStatus

@Suite("Status API access: Host names, bearer tokens, listeners")
struct StatusAccessTests {
    let token = Array("0123456789abcdef0123".utf8)

    func headers(host: String? = "127.0.0.1:9090", authorization: String? = nil) -> HTTPHeaders {
        var headers = HTTPHeaders()
        if let host { headers.add(name: "Host", value: host) }
        if let authorization { headers.add(name: "Authorization", value: authorization) }
        return headers
    }

    @Test(
        "Host: IP addresses, localhost and the configured names pass; other names get 421",
        arguments: [
            ("127.0.0.1:9090", true), ("127.0.0.1", true), ("10.1.2.3:80", true), ("[::1]:9090", true),
            ("[fe80::1]", true),
            ("localhost:9090", true), ("LOCALHOST", true), ("localhost.", true), ("status.example.com", true),
            ("Status.Example.Com:9090", true),
            ("attacker.example", false), ("attacker.example:9090", false), ("127.0.0.1.attacker.example", false),
            ("localhost.attacker.example", false), ("[::1", false), ("127.0.0.1:x", false), ("1.2.3.4.5", false),
            ("256.1.1.1", false), ("", false),
        ])
    func hosts(host: String, admitted: Bool) {
        let access = StatusAccess(token: nil, hosts: ["status.example.com"])
        let refusal = access.check(path: "/status", headers: headers(host: host), transport: .tcp)
        #expect((refusal == nil) == admitted, "\(host)")
        if let refusal { #expect(refusal.status == .misdirectedRequest) }
    }

    @Test("Host is required of HTTP/1.1 and may appear once (RFC 9112 §3.2)")
    func hostRequired() {
        let access = StatusAccess(token: nil, hosts: [])
        #expect(access.check(path: "/status", headers: headers(host: nil), transport: .tcp)?.status == .badRequest)
        #expect(access.check(path: "/status", headers: headers(host: nil), version: .http1_0, transport: .tcp) == nil)
        var twice = headers()
        twice.add(name: "Host", value: "127.0.0.1")
        #expect(access.check(path: "/status", headers: twice, transport: .tcp)?.status == .badRequest)
        #expect(access.check(path: "/status", headers: headers(host: nil), transport: .unixSocket) == nil)
    }

    @Test("a token guards every endpoint but /livez, /readyz and the page at / (which holds no data)")
    func bearer() {
        let access = StatusAccess(token: token, hosts: [])
        for path: Substring in [
            "/status", "/closes", "/connections", "/metrics", "/health", "/history", "/closes/stream", "/nope",
        ] {
            let missing = access.check(path: path, headers: headers(), transport: .tcp)
            #expect(missing?.status == .unauthorized)
            #expect(missing?.headers.first?.1 == "Bearer realm=\"vigil\"")
            let wrong = access.check(
                path: path, headers: headers(authorization: "Bearer 0123456789abcdef0124"), transport: .tcp)
            #expect(wrong?.status == .unauthorized)
            #expect(wrong?.headers.first?.1.contains("invalid_token") == true)
            #expect(
                access.check(
                    path: path, headers: headers(authorization: "Bearer 0123456789abcdef0123"), transport: .tcp) == nil)
            #expect(
                access.check(
                    path: path, headers: headers(authorization: "bearer  0123456789abcdef0123"), transport: .tcp) == nil
            )
            #expect(
                access.check(path: path, headers: headers(authorization: "Basic 0123456789abcdef0123"), transport: .tcp)
                    != nil)
            #expect(
                access.check(path: path, headers: headers(authorization: "Bearer 0123456789abcdef012"), transport: .tcp)
                    != nil)
        }
        for path: Substring in ["/livez", "/readyz", "/"] {
            #expect(access.check(path: path, headers: headers(), transport: .tcp) == nil)
        }
    }

    @Test("the Unix socket is guarded by its mode: neither Host nor token is checked there")
    func unixSocket() {
        let access = StatusAccess(token: token, hosts: [])
        #expect(
            access.check(path: "/status", headers: headers(host: "attacker.example"), transport: .unixSocket) == nil)
    }

    @Test("tokens compare in constant time and exactly")
    func compare() {
        #expect(StatusAccess.constantTimeEqual(token, token))
        #expect(!StatusAccess.constantTimeEqual(token, token + [0x30]))
        #expect(!StatusAccess.constantTimeEqual(token, Array(token.dropLast())))
        #expect(!StatusAccess.constantTimeEqual([], token))
        #expect(StatusAccess.constantTimeEqual([], []))
    }
}
