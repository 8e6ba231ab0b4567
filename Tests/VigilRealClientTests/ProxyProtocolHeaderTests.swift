import Testing
import VigilConfig

@testable import VigilRealClient

@Suite("The PROXY protocol header and forwarded chains")
struct ProxyProtocolHeaderTests {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    func parse(_ text: String, _ versions: Set<ProxyProtocolHeader.Version> = [.v1, .v2])
        -> ProxyProtocolHeader.Parse
    {
        ProxyProtocolHeader.parse(Array(text.utf8), accepting: versions)
    }

    @Test("v1: TCP4 and TCP6 with their ports, UNKNOWN, and only the header is consumed")
    func version1() {
        let header = "PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080\r\n"
        guard case .header(let parsed) = parse(header + "GET / HTTP/1.1\r\n") else {
            Issue.record("not a header")
            return
        }
        #expect(parsed.source?.description == "192.0.2.7:51234")
        #expect(parsed.destination?.description == "127.0.0.1:8080")
        #expect(parsed.length == header.utf8.count)
        guard case .header(let six) = parse("PROXY TCP6 2001:DB8:0::7 ::1 1 443\r\n") else {
            Issue.record("not a header")
            return
        }
        #expect(six.source?.description == "[2001:db8::7]:1")
        guard case .header(let unknown) = parse("PROXY UNKNOWN\r\n") else {
            Issue.record("not a header")
            return
        }
        #expect(unknown.source == nil)
    }

    @Test("v1: incomplete lines wait, malformed ones are refused at once")
    func version1Refusals() {
        #expect(parse("PROX") == .needMore)
        #expect(parse("PROXY TCP4 192.0.2.7") == .needMore)
        let refusals = [
            "PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080\n", "PROXY TCP4 2001:db8::1 ::1 1 2\r\n",
            "PROXY TCP4 192.0.2.7 127.0.0.1 051234 8080\r\n", "PROXY TCP4 192.0.2.7 127.0.0.1 65536 8080\r\n",
            "PROXY TCP4 192.0.2.7  127.0.0.1 1 2\r\n", "PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n",
            "PROXY TCP4 192.0.2.7 127.0.0.1 1\r\n", "GET / HTTP/1.1\r\n", "PROXZ",
            "PROXY " + String(repeating: "1", count: 120),
        ]
        for text in refusals {
            guard case .invalid = parse(text) else {
                Issue.record("\(text.debugDescription) was not refused: \(parse(text))")
                continue
            }
        }
        guard case .invalid(let why) = parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", [.v2]) else {
            Issue.record("v1 accepted on a v2 listener")
            return
        }
        #expect(why == "the connection did not begin with a PROXY protocol v2 header")
    }

    @Test("v2: INET and INET6 with TLVs skipped, LOCAL and UNSPEC without a client")
    func version2() {
        let inet: [UInt8] = [192, 0, 2, 7, 127, 0, 0, 1, 0xC8, 0x22, 0x1F, 0x90]
        let tlvs: [UInt8] = [0x01, 0x00, 0x02, 0x68, 0x32]
        let body = inet + tlvs
        let bytes = Self.signature + [0x21, 0x11, 0, UInt8(body.count)] + body + Array("GET".utf8)
        guard case .header(let header) = ProxyProtocolHeader.parse(bytes, accepting: [.v2]) else {
            Issue.record("not a header")
            return
        }
        #expect(header.source?.description == "192.0.2.7:51234")
        #expect(header.destination?.description == "127.0.0.1:8080")
        #expect(header.length == 16 + body.count)
        #expect(ProxyProtocolHeader.parse(Array(bytes.prefix(20)), accepting: [.v2]) == .needMore)
        let local = Self.signature + [0x20, 0x00, 0, 0]
        guard case .header(let check) = ProxyProtocolHeader.parse(local, accepting: [.v2]) else {
            Issue.record("LOCAL refused")
            return
        }
        #expect(check.source == nil && check.isLocal && check.length == 16)
        let unix = Self.signature + [0x21, 0x31, 0, 216] + Array(repeating: UInt8(0), count: 216)
        guard case .header(let socket) = ProxyProtocolHeader.parse(unix, accepting: [.v2]) else {
            Issue.record("a Unix socket's header refused")
            return
        }
        #expect(socket.source == nil && !socket.isLocal, "a real client without an IP address, not a health check")
        let mapped =
            Array(repeating: UInt8(0), count: 10) + [0xFF, 0xFF, 192, 0, 2, 9] + Array(repeating: 0, count: 15) + [1]
            + [0, 1, 0, 2]
        guard
            case .header(let four) = ProxyProtocolHeader.parse(
                Self.signature + [0x21, 0x21, 0, 36] + mapped, accepting: [.v2])
        else {
            Issue.record("an IPv4-mapped source refused")
            return
        }
        #expect(four.source?.description == "192.0.2.9:1", "one spelling for one client")
        let inet6 = Array(repeating: UInt8(0), count: 15) + [1] + Array(repeating: 0, count: 15) + [2] + [0, 1, 0, 2]
        guard
            case .header(let six) = ProxyProtocolHeader.parse(
                Self.signature + [0x21, 0x21, 0, 36] + inet6, accepting: [.v2])
        else {
            Issue.record("INET6 refused")
            return
        }
        #expect(six.source?.description == "[::1]:1")
    }

    @Test("v2: a wrong version, command, family, a short body or a huge length is refused")
    func version2Refusals() {
        let inet: [UInt8] = [192, 0, 2, 7, 127, 0, 0, 1, 0, 1, 0, 2]
        let signature = Self.signature
        let headers: [[UInt8]] = [
            [0x11, 0x11, 0, 12] + inet, [0x22, 0x11, 0, 12] + inet, [0x21, 0x41, 0, 12] + inet,
            [0x21, 0x11, 0, 6] + Array(inet.prefix(6)), [0x21, 0x13, 0, 12] + inet, [0x21, 0x31, 0, 12] + inet,
            [0x21, 0x11, 0xFF, 0xFF],
        ]
        for bytes in headers.map({ signature + $0 }) + [Array(signature.prefix(5)) + [0x00]] {
            guard case .invalid = ProxyProtocolHeader.parse(bytes, accepting: [.v1, .v2]) else {
                Issue.record("\(bytes) was not refused")
                continue
            }
        }
    }

    @Test("forwarded chains: the first untrusted hop from the right; Forwarded before X-Forwarded-For")
    func chains() {
        let trusted = [AddressRange("10.0.0.0/8")!, AddressRange("2001:db8::/32")!]
        let xff = ForwardedChain(
            forwardedFor: ["203.0.113.9, 198.51.100.2", "10.0.0.7"],
            forwardedProto: ["https, http, http"])
        #expect(xff.client(trusting: trusted)?.address == "198.51.100.2")
        #expect(xff.client(trusting: trusted)?.scheme == "http")
        let all = ForwardedChain(forwardedFor: ["10.0.0.1, 10.0.0.2"], forwardedProto: ["https"])
        #expect(all.client(trusting: trusted)?.address == "10.0.0.1")
        let forwarded = ForwardedChain(
            forwarded: [#"for=192.0.2.43;proto=https, for="[2001:db8:cafe::17]:4711";proto=http"#])
        #expect(forwarded.hops.map(\.address) == ["192.0.2.43", "2001:db8:cafe::17"])
        #expect(forwarded.client(trusting: trusted)?.address == "192.0.2.43")
        #expect(forwarded.client(trusting: trusted)?.scheme == "https")
        let hidden = ForwardedChain(forwarded: ["for=_hidden, for=10.0.0.9"])
        #expect(hidden.client(trusting: trusted)?.address == "10.0.0.9", "an obfuscated hop stops the walk")
        let ports = ForwardedChain(
            forwardedFor: ["192.0.2.1:8080, [2001:db8::1]:80, ::ffff:192.0.2.5"], forwardedProto: [])
        #expect(ports.hops.map(\.address) == ["192.0.2.1", "2001:db8::1", "192.0.2.5"])
        let twice = ForwardedChain(forwarded: ["for=10.0.0.9;for=6.6.6.6"])
        #expect(twice.hops.map(\.address) == [nil], "a repeated for= names nobody")
    }

    @Test("address ranges: blocks, single addresses, IPv4-mapped IPv6 as IPv4, host bits refused")
    func ranges() {
        #expect(AddressRange("10.0.0.0/8")!.contains("10.255.1.2"))
        #expect(!AddressRange("10.0.0.0/8")!.contains("11.0.0.1"))
        #expect(AddressRange("10.0.0.0/8")!.contains("::ffff:10.1.2.3"))
        #expect(AddressRange("2001:db8::/32")!.contains("2001:db8:ffff::1"))
        #expect(!AddressRange("2001:db8::/32")!.contains("10.0.0.1"))
        #expect(AddressRange("192.0.2.7")!.contains("192.0.2.7") && !AddressRange("192.0.2.7")!.contains("192.0.2.8"))
        #expect(AddressRange("0.0.0.0/0")!.contains("198.51.100.1"))
        #expect(AddressRange("10.0.0.1/8") == nil && AddressRange("10.0.0.0/33") == nil && AddressRange("x") == nil)
        #expect(AddressRange("10.0.0.0/08") == nil && AddressRange("10.0.0.0/") == nil)
        #expect(AddressRange("2001:DB8::/32")!.description == "2001:db8::/32")
    }
}
