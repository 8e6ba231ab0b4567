import NIOHTTP1
import Testing
import VigilConfig

@testable import VigilServer

@Suite("Origin policy: which pages may open a WebSocket")
struct OriginPolicyTests {
    func policy(_ allowed: String? = nil, require: Bool = false) throws -> OriginPolicy {
        var flags = ["require_origin": require ? "true" : "false"]
        if let allowed { flags["allowed_origins"] = allowed }
        return OriginPolicy(settings: try SettingsLoader.resolve(flags: flags, environment: [:], file: nil).settings)
    }

    func headers(origin: String?, host: String? = "127.0.0.1:8080") -> HTTPHeaders {
        var headers = HTTPHeaders()
        if let host { headers.add(name: "Host", value: host) }
        if let origin { headers.add(name: "Origin", value: origin) }
        return headers
    }

    @Test(
        "by default, same origin only: the Origin's host and port are the Host header's",
        arguments: [
            ("http://127.0.0.1:8080", "127.0.0.1:8080", true),
            ("http://LOCALHOST:8080", "localhost:8080", true),
            ("https://app.example.com", "app.example.com", true),
            ("https://app.example.com", "app.example.com:443", true),
            ("http://app.example.com", "app.example.com:80", true),
            ("http://[::1]:8080", "[::1]:8080", true),
            ("http://127.0.0.1:8080/", "127.0.0.1:8080", true),
            ("http://127.0.0.1:8080/server", "127.0.0.1:8080", true),
            ("http://app.example.com./", "app.example.com", true),
            ("http://app.example.com", "app.example.com.:80", true),
            ("http://[0::1]:8080/", "[::1]:8080", true),
            ("http://127.0.0.1:8080/?x", "127.0.0.1:8080", false),
            ("http://127.0.0.1:8080/#x", "127.0.0.1:8080", false),
            ("http://me@127.0.0.1:8080/", "127.0.0.1:8080", false),
            ("http://evil.example", "127.0.0.1:8080", false),
            ("http://127.0.0.1:9999", "127.0.0.1:8080", false),
            ("https://app.example.com", "app.example.com:80", false),
            ("null", "127.0.0.1:8080", false),
        ])
    func sameOrigin(origin: String, host: String, admitted: Bool) throws {
        #expect((try policy().check(headers(origin: origin, host: host)) == nil) == admitted)
    }

    @Test("allowed_origins: exact origins, subdomain wildcards, any")
    func allowedList() throws {
        let list = try policy("https://app.example.com, https://*.example.org, http://127.0.0.1:3000")
        for origin in [
            "https://app.example.com", "https://app.example.com:443", "https://a.b.example.org",
            "http://127.0.0.1:3000",
        ] {
            #expect(list.check(headers(origin: origin)) == nil, "\(origin)")
        }
        for origin in [
            "http://app.example.com", "https://example.org", "https://evil-example.org", "https://x.example.org:8443",
            "http://127.0.0.1:3001",
        ] {
            #expect(list.check(headers(origin: origin))?.status == .forbidden, "\(origin)")
        }
        #expect(try policy("*").check(headers(origin: "https://anything.example")) == nil)
        #expect(try policy("*").check(headers(origin: "null")) == nil, "* admits an opaque origin too")
        #expect(
            try policy("https://*.example.com").check(headers(origin: "null"))?.message.contains("allowed_origins")
                == true)
    }

    @Test("the refusal names the origin and the setting")
    func refusal() throws {
        let refused = try #require(try policy().check(headers(origin: "https://evil.example")))
        #expect(refused.status == .forbidden && refused.reason == .origin)
        #expect(
            refused.message
                == "origin https://evil.example is not the same origin as Host 127.0.0.1:8080; set allowed_origins to admit it"
        )
        let listed = try #require(try policy("https://app.example.com").check(headers(origin: "https://evil.example")))
        #expect(listed.message == "origin https://evil.example is not in allowed_origins (https://app.example.com)")
        let path = try #require(try policy("https://APP.example.com/").check(headers(origin: "https://evil.example/x")))
        #expect(
            path.message == "origin https://evil.example/x is not in allowed_origins (https://app.example.com)",
            "as sent, and as loaded")
        let opaque = try #require(try policy().check(headers(origin: "http://127.0.0.1:8080/?q")))
        #expect(opaque.message.hasPrefix("origin \"http://127.0.0.1:8080/?q\" is not an origin vigild can check"))
    }

    @Test("no Origin: a client that is not a browser, admitted unless require_origin")
    func noOrigin() throws {
        #expect(try policy().check(headers(origin: nil)) == nil)
        #expect(
            try policy(require: true).check(headers(origin: nil))?.message
                == "a request without Origin, and require_origin is set")
    }

    @Test(
        "bad patterns are configuration errors naming the entry",
        arguments: ["ftp://x", "https://", "*.example.com", "https://a.com?x"])
    func badPatterns(pattern: String) {
        #expect {
            try SettingsLoader.resolve(flags: ["allowed_origins": pattern], environment: [:], file: nil)
        } throws: { error in
            "\(error)".contains("allowed_origins") && "\(error)".contains("\"\(pattern)\" is not one")
        }
    }

    @Test("an entry with a path other than / is a configuration error naming the entry and its path")
    func pathInPattern() throws {
        #expect {
            try SettingsLoader.resolve(
                flags: ["allowed_origins": "https://ok.example/, https://a.com/app"], environment: [:], file: nil)
        } throws: { error in
            "\(error)".contains("allowed_origins") && "\(error)".contains("\"https://a.com/app\" has the path \"/app\"")
        }
        let loaded = try SettingsLoader.resolve(
            flags: ["allowed_origins": "https://OK.example./"], environment: [:], file: nil)
        #expect(loaded.settings.allowedOrigins?.map(\.description) == ["https://ok.example"])
    }
}
