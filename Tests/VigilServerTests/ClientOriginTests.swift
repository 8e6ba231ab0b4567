import NIOCore
import Testing
import VigilConfig
import VigilRealClient

@testable import VigilServer

@Suite("Who the client is: one trusted source, never a forged one")
struct ClientOriginTests {
    let balancer = try! SocketAddress(ipAddress: "10.0.0.5", port: 40000)
    let stranger = try! SocketAddress(ipAddress: "198.51.100.9", port: 40000)
    let trusted = [AddressRange("10.0.0.0/24")!]

    func header(_ text: String) -> ProxyProtocolHeader {
        guard case .header(let header) = ProxyProtocolHeader.parse(Array(text.utf8), accepting: [.v1]) else {
            fatalError("not a header: \(text)")
        }
        return header
    }

    func xff(_ value: String) -> ForwardedChain { ForwardedChain(forwardedFor: [value], forwardedProto: []) }

    @Test("a trusted balancer's PROXY header names the client; the client's own headers are then not read")
    func proxyThenHeaders() {
        let origin = ClientOrigin(remote: balancer, trusted: trusted, proxyProtocol: true)
        #expect(!origin.settled)
        #expect(origin.received(header("PROXY TCP4 10.0.0.77 10.0.0.11 5555 8080\r\n")) == .proxy)
        #expect((origin.peer, origin.address, origin.via) == ("10.0.0.77:5555", "10.0.0.77", "10.0.0.5:40000"))
        #expect(origin.settled, "the per-IP limit can count it now")
        // 10.0.0.77 is inside the trusted range, but what it says of itself is not believed.
        #expect(origin.forwarded(by: xff("6.6.6.6")))
        #expect(origin.address == "10.0.0.77")
    }

    @Test("from a stranger: the PROXY header, LOCAL included, and forwarded headers are ignored")
    func strangers() {
        let origin = ClientOrigin(remote: stranger, trusted: trusted, proxyProtocol: true)
        #expect(origin.received(header("PROXY UNKNOWN\r\n")) == .untrusted)
        #expect(!origin.healthCheck)
        let other = ClientOrigin(remote: stranger, trusted: trusted, proxyProtocol: false)
        #expect(other.settled)
        #expect(!other.forwarded(by: xff("6.6.6.6")))
        #expect((other.peer, other.address, other.via) == ("198.51.100.9:40000", "198.51.100.9", nil))
    }

    @Test("a trusted HTTP balancer's X-Forwarded-For: the rightmost untrusted address")
    func httpBalancer() {
        let origin = ClientOrigin(remote: balancer, trusted: trusted, proxyProtocol: false)
        #expect(!origin.settled)
        #expect(origin.forwarded(by: xff("6.6.6.6, 203.0.113.4, 10.0.0.6")))
        #expect((origin.peer, origin.address, origin.via) == ("203.0.113.4", "203.0.113.4", "10.0.0.5:40000"))
        #expect(origin.hop == "10.0.0.5", "what vigild appends to the X-Forwarded-For it sends on")
    }

    @Test("a LOCAL header from a trusted balancer, or any header from a peer already gone, is a health check")
    func healthChecks() {
        let origin = ClientOrigin(remote: balancer, trusted: trusted, proxyProtocol: true)
        #expect(origin.received(header("PROXY UNKNOWN\r\n")) == .local)
        #expect(origin.healthCheck && origin.address == "10.0.0.5")
        let gone = ClientOrigin(remote: nil, trusted: trusted, proxyProtocol: true)
        #expect(gone.received(header("PROXY UNKNOWN\r\n")) == .local)
        let goneClaiming = ClientOrigin(remote: nil, trusted: trusted, proxyProtocol: true)
        // HAProxy's v1 checks: a TCP4 header naming the check's own connection, and a reset. From
        // the trusted balancer itself, still there: a check, whatever the accept's timing.
        let naming = ClientOrigin(remote: balancer, trusted: trusted, proxyProtocol: true)
        #expect(naming.received(header("PROXY TCP4 10.0.0.5 10.0.0.11 40000 8080\r\n")) == .local)
        #expect(naming.healthCheck && naming.via == nil && naming.peer == "10.0.0.5:40000")
        // Naming itself does not make an untrusted peer's header a check.
        let stranger = ClientOrigin(
            remote: try! SocketAddress(ipAddress: "192.0.2.7", port: 5000), trusted: trusted, proxyProtocol: true)
        #expect(stranger.received(header("PROXY TCP4 192.0.2.7 10.0.0.11 5000 8080\r\n")) == .untrusted)
        // Gone before its address was read: whoever sent it cannot be checked against
        // trusted_proxies, so nothing it names is believed, and it is not called untrusted either.
        #expect(goneClaiming.received(header("PROXY TCP4 6.6.6.6 10.0.0.11 1 2\r\n")) == .local)
        #expect(goneClaiming.address == nil && goneClaiming.peer == "unknown" && goneClaiming.via == nil)
    }
}
