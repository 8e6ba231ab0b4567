#if canImport(Glibc)
    import Glibc
#endif

/// HAProxy's PROXY protocol header (versions 1 and 2, haproxy.org/download/3.0/doc/proxy-protocol.txt),
/// read from the first bytes of a connection a load balancer opened: who the client was, before
/// the balancer's own connection hid it. Sans-IO: handed the bytes so far, it says whether a
/// header is complete, needs more, or cannot be one. Never reads past the header: what follows
/// (a TLS hello, an HTTP request) is the connection's.
public struct ProxyProtocolHeader: Sendable, Hashable {
    public enum Version: Sendable, Hashable { case v1, v2 }

    public var version: Version
    /// `true` for v2 `LOCAL` and v1 `UNKNOWN`: the balancer speaking for itself (its health
    /// checks), with no client to name.
    public var isLocal: Bool
    /// The client and the address it connected to; `nil` for a local header, and for a client
    /// of another address family than IPv4 and IPv6 (a Unix socket: a real connection whose
    /// client has no IP address to name).
    public var source: Endpoint?
    public var destination: Endpoint?
    /// The header's length in bytes: where the connection's own bytes begin.
    public var length: Int

    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// `203.0.113.7`, `2001:db8::1`
        public var address: String
        public var port: Int

        /// `203.0.113.7:51234`, `[2001:db8::1]:51234`
        public var description: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
    }

    /// What the bytes so far are.
    public enum Parse: Sendable, Hashable {
        case header(ProxyProtocolHeader)
        /// Could still become a header: wait for more (up to `maxLength`).
        case needMore
        /// Not a header this listener accepts, and never will be: why, in words for the log.
        case invalid(String)
    }

    /// The longest header accepted: a v1 line is at most 107 bytes; a v2 header with its TLVs
    /// (what AWS and GCP add) is far below this. A longer one is refused rather than buffered.
    public static let maxLength = 4096
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix = Array("PROXY ".utf8)
    static let v1MaxLength = 107

    /// Reads the header at the start of `bytes`, accepting `v1`, `v2` or both.
    public static func parse(_ bytes: [UInt8], accepting versions: Set<Version>) -> Parse {
        guard let first = bytes.first else { return .needMore }
        if first == v2Signature[0] && versions.contains(.v2) { return parseV2(bytes) }
        if first == v1Prefix[0] && versions.contains(.v1) { return parseV1(bytes) }
        let expected =
            versions == [.v1]
            ? "a PROXY protocol v1 line" : versions == [.v2] ? "a PROXY protocol v2 header" : "a PROXY protocol header"
        return .invalid("the connection did not begin with \(expected)")
    }

    // MARK: - Version 1: "PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n"

    static func parseV1(_ bytes: [UInt8]) -> Parse {
        let prefix = min(bytes.count, v1Prefix.count)
        guard bytes[..<prefix].elementsEqual(v1Prefix[..<prefix]) else {
            return .invalid("the connection did not begin with a PROXY protocol header")
        }
        guard let end = bytes.prefix(v1MaxLength).firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count >= v1MaxLength ? .invalid("a PROXY v1 line longer than 107 bytes") : .needMore
        }
        guard end > 0, bytes[end - 1] == UInt8(ascii: "\r") else {
            return .invalid("a PROXY v1 line that does not end with CRLF")
        }
        let line = bytes[v1Prefix.count..<(end - 1)]
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            return .invalid("a PROXY v1 line with a byte that is not printable ASCII")
        }
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        if fields.first == "UNKNOWN" {
            return .header(ProxyProtocolHeader(version: .v1, isLocal: true, length: end + 1))
        }
        guard fields.count == 5, fields[0] == "TCP4" || fields[0] == "TCP6" else {
            return .invalid("a PROXY v1 line that is not TCP4, TCP6 or UNKNOWN with two addresses and two ports")
        }
        let family = fields[0] == "TCP4" ? AF_INET : AF_INET6
        guard let source = address(fields[1], family: family), let destination = address(fields[2], family: family),
            let sourcePort = port(fields[3]), let destinationPort = port(fields[4])
        else {
            return .invalid("a PROXY v1 line whose addresses or ports are not \(fields[0]) ones")
        }
        return .header(
            ProxyProtocolHeader(
                version: .v1, source: Endpoint(address: source, port: sourcePort),
                destination: Endpoint(address: destination, port: destinationPort), length: end + 1))
    }

    /// A decimal port, 0 to 65535, without a sign or leading zeros.
    static func port(_ text: String) -> Int? {
        guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            text == "0" || !text.hasPrefix("0"), let value = Int(text), value <= 65535
        else { return nil }
        return value
    }

    /// An address of `family` in text, as inet_ntop writes it back (one canonical form).
    static func address(_ text: String, family: Int32) -> String? {
        var raw = [UInt8](repeating: 0, count: 16)
        guard inet_pton(family, text, &raw) == 1 else { return nil }
        return format(Array(raw.prefix(family == AF_INET ? 4 : 16)))
    }

    /// 4 or 16 bytes of an address, as text; an IPv4-mapped IPv6 address as the IPv4 one it
    /// is (one client, one spelling, for the per-IP limit and the trust rule).
    static func format(_ bytes: [UInt8]) -> String? {
        if bytes.count == 16 && bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return format(Array(bytes[12...]))
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, bytes, &text, socklen_t(text.count)) != nil else {
            return nil
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - Version 2: a binary header after a 12-byte signature

    static func parseV2(_ bytes: [UInt8]) -> Parse {
        let prefix = min(bytes.count, v2Signature.count)
        guard bytes[..<prefix].elementsEqual(v2Signature[..<prefix]) else {
            return .invalid("the connection did not begin with a PROXY protocol header")
        }
        guard bytes.count >= 16 else { return .needMore }
        let versionAndCommand = bytes[12]
        guard versionAndCommand >> 4 == 2 else {
            return .invalid("a PROXY v2 header of version \(versionAndCommand >> 4)")
        }
        let command = versionAndCommand & 0x0F
        guard command <= 1 else { return .invalid("a PROXY v2 header with command \(command)") }
        let length = 16 + (Int(bytes[14]) << 8 | Int(bytes[15]))
        guard length <= maxLength else {
            return .invalid("a PROXY v2 header of \(length) bytes (at most \(maxLength) accepted)")
        }
        guard bytes.count >= length else { return .needMore }
        let family = bytes[13] >> 4
        let transport = bytes[13] & 0x0F
        guard family <= 3 else { return .invalid("a PROXY v2 header with address family \(family)") }
        guard transport <= 2 else { return .invalid("a PROXY v2 header with transport \(transport)") }
        // LOCAL: the balancer speaking for itself (a health check); the addresses, if any, mean nothing.
        guard command == 1 else { return .header(ProxyProtocolHeader(version: .v2, isLocal: true, length: length)) }
        let addressLength: Int
        switch family {
        case 1: addressLength = 4
        case 2: addressLength = 16
        case 3:
            // A Unix socket's two 108-byte paths: a real client, with no IP address to name.
            guard length - 16 >= 216 else { return .invalid("a PROXY v2 header too short for its addresses") }
            return .header(ProxyProtocolHeader(version: .v2, length: length))
        default:
            return .header(ProxyProtocolHeader(version: .v2, length: length))  // UNSPEC: no address given
        }
        // What follows the addresses (TLVs: AWS's VPC endpoint, GCP's connection id, SSL facts)
        // is skipped whole; `length` bounds it.
        guard length - 16 >= 2 * addressLength + 4 else {
            return .invalid("a PROXY v2 header too short for its addresses")
        }
        let body = Array(bytes[16..<length])
        guard let source = format(Array(body[0..<addressLength])),
            let destination = format(Array(body[addressLength..<(2 * addressLength)]))
        else { return .invalid("a PROXY v2 header with an unreadable address") }
        let ports = 2 * addressLength
        return .header(
            ProxyProtocolHeader(
                version: .v2, source: Endpoint(address: source, port: Int(body[ports]) << 8 | Int(body[ports + 1])),
                destination: Endpoint(address: destination, port: Int(body[ports + 2]) << 8 | Int(body[ports + 3])),
                length: length))
    }

    init(version: Version, isLocal: Bool = false, source: Endpoint? = nil, destination: Endpoint? = nil, length: Int) {
        self.version = version
        self.isLocal = isLocal
        self.source = source
        self.destination = destination
        self.length = length
    }
}
