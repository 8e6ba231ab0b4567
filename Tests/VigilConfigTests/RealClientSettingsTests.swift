import Testing

@testable import VigilConfig

@Suite("trusted_proxies and proxy_protocol")
struct RealClientSettingsTests {
    func error(_ flags: [String: String]) -> String {
        do {
            _ = try SettingsLoader.resolve(flags: flags, environment: [:], file: nil)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test("trusted_proxies: addresses and blocks, shown canonical; errors name the entry")
    func trusted() throws {
        let settings = try SettingsLoader.resolve(
            flags: ["trusted_proxies": "10.0.0.0/8, 2001:DB8::/32,192.0.2.7,10.0.0.0/8"], environment: [:], file: nil)
        #expect(settings.text(forKey: "trusted_proxies") == "10.0.0.0/8,2001:db8::/32,192.0.2.7")
        #expect(
            error(["trusted_proxies": "10.0.0.1/8"])
                == "invalid value \"10.0.0.1/8\" for trusted_proxies (flag --trusted-proxies): expected none, or IP addresses and CIDR blocks separated by commas such as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32 (\"10.0.0.1/8\" is not one; a block's host bits must be zero)"
        )
        #expect(error(["trusted_proxies": "lb.example.com"]).contains("\"lb.example.com\" is not one"))
    }

    @Test("proxy_protocol needs trusted_proxies and a listener")
    func proxyProtocol() {
        #expect(
            error(["proxy_protocol": "v2"])
                == "invalid value \"v2\" for proxy_protocol (flag --proxy-protocol): needs trusted_proxies: the balancers whose PROXY headers are believed (from any other peer a header is ignored)"
        )
        #expect(
            error(["proxy_protocol": "any", "trusted_proxies": "10.0.0.5", "listen": "none"]).contains(
                "is for the WebSocket listener"))
        #expect(
            error(["proxy_protocol": "v3"]).contains("v1|v2|any") || error(["proxy_protocol": "v3"]).contains("one of"))
    }
}
