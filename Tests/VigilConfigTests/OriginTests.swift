import Testing
import VigilConfig

@Suite("Origin: read as clients send it, allowed_origins as operators write it")
struct OriginTests {
    @Test(
        "one canonical form: case, default and empty ports, paths, trailing dots, IPv6 text",
        arguments: [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/server/page.html", "http://127.0.0.1:8080"),
            ("HTTPS://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443/", "https://app.example.com"),
            ("http://app.example.com:80", "http://app.example.com"),
            ("http://app.example.com:", "http://app.example.com"),
            ("http://app.example.com.", "http://app.example.com"),
            ("http://app.example.com.:8080/", "http://app.example.com:8080"),
            ("http://[::1]:8080/", "http://[::1]:8080"),
            ("http://[0:0:0::1]", "http://[::1]"),
            ("http://[2001:DB8::A]:443", "http://[2001:db8::a]:443"),
            ("http://my_service-1.internal~x", "http://my_service-1.internal~x"),
            ("http://h/a@b", "http://h"),
        ])
    func canonical(text: String, canonical: String) throws {
        #expect(try #require(Origin(text)).description == canonical)
    }

    @Test(
        "no origin to compare: opaque, like null",
        arguments: [
            "null", "", "127.0.0.1:8080", "//127.0.0.1", "ws://127.0.0.1:8080", "file:///tmp/page.html", "http:/x",
            "http://",
            "http:///path", "http://user@127.0.0.1:8080", "http://user:secret@h/", "http://127.0.0.1:8080/?x=1",
            "http://127.0.0.1:8080?x", "http://127.0.0.1:8080/#top", "http://h#", "http://[::1", "http://[::1]x",
            "http://[fe80::1%25eth0]:8080", "http://[127.0.0.1]", "http://[]", "http://.", "http://..", "http://h..",
            "http://.h", "http://a..b", "http://a b", "http://h/a b", "http://h:0", "http://h:65536", "http://h:080808",
            "http://h:+80", "http://h:8080:1", "http://h\u{e9}", "http://*.example.com", "http://h/\u{7f}",
        ])
    func opaque(text: String) {
        #expect(Origin(text) == nil, "\(text)")
    }

    @Test(
        "the Host header is read the same way, the port defaulting to the origin's scheme's",
        arguments: [
            ("http://h", "h", true), ("http://h", "h:80", true), ("http://h", "H.:80", true), ("http://h.", "h", true),
            ("https://h", "h:443", true), ("https://h", "h", true), ("https://h", "h:80", false),
            ("http://h", "h:443", false),
            ("http://[::1]:8080", "[0::1]:8080", true), ("http://[::1]", "[::1]", true), ("http://h", "h:", true),
            ("http://h", "g", false), ("http://h", "h:8080", false), ("http://h", "", false),
            ("http://h", "h..", false),
            ("http://h", "user@h", false),
        ])
    func host(origin: String, host: String, same: Bool) throws {
        #expect(try #require(Origin(origin)).isSameOrigin(asHost: host) == same, "\(origin) vs Host \(host)")
    }

    @Test(
        "allowed_origins entries: canonical, a trailing / allowed",
        arguments: [
            ("*", "*"),
            ("https://App.Example.com/", "https://app.example.com"),
            ("https://app.example.com.:443", "https://app.example.com"),
            ("http://[0::1]:3000/", "http://[::1]:3000"),
            ("https://*.Example.org./", "https://*.example.org"),
            ("https://*.example.org:8443", "https://*.example.org:8443"),
        ])
    func patterns(text: String, canonical: String) throws {
        #expect(try OriginPattern(text).description == canonical)
    }

    @Test(
        "allowed_origins entries with a path are refused, naming the path",
        arguments: [
            ("https://app.example.com/app", "/app"), ("https://app.example.com//", "//"),
            ("https://*.example.org/x/", "/x/"),
        ])
    func patternPaths(text: String, path: String) {
        #expect(throws: OriginPattern.Refusal.path(path)) { try OriginPattern(text) }
    }

    @Test(
        "entries that are no origin are refused",
        arguments: [
            "ftp://x", "https://", "*.example.com", "https://*.", "https://*.[::1]", "https://user@a.com",
            "https://a.com?q",
            "https://a.com/#f", "null", "https://a.*.com",
        ])
    func patternRefusals(text: String) {
        #expect(throws: OriginPattern.Refusal.notAnOrigin) { try OriginPattern(text) }
    }

    @Test("patterns match the canonical origin")
    func matching() throws {
        let exact = try OriginPattern("https://app.example.com/")
        for text in ["https://app.example.com", "https://APP.example.com.:443/", "https://app.example.com/x"] {
            #expect(exact.matches(try #require(Origin(text))), "\(text)")
        }
        let wildcard = try OriginPattern("https://*.example.org.")
        #expect(wildcard.matches(try #require(Origin("https://a.example.org./"))))
        #expect(!wildcard.matches(try #require(Origin("https://example.org"))))
        #expect(!wildcard.matches(try #require(Origin("https://evilexample.org"))))
        #expect(try OriginPattern("http://[::1]:3000").matches(try #require(Origin("http://[0:0::1]:3000/"))))
    }
}
