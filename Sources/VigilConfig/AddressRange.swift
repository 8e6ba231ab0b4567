#if canImport(Glibc)
    import Glibc
#endif

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`): an entry of
/// `trusted_proxies`. An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, how a dual-stack socket
/// names an IPv4 peer) is matched as the IPv4 address it is.
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    /// 4 or 16 bytes, the bits past `prefix` zero.
    let network: [UInt8]
    let prefix: Int

    /// Parses `text`; `nil` if it is no address or block (host bits set in a block are refused:
    /// `10.0.0.1/8` is more likely a typo than a wish).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.bytes(String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...bits).contains(value), parts[1].allSatisfy(\.isNumber),
                parts[1] == "0" || !parts[1].hasPrefix("0")
            else { return nil }
            prefix = value
        }
        guard Self.masked(bytes, prefix) == bytes else { return nil }
        self.network = bytes
        self.prefix = prefix
    }

    /// A single address rather than a block.
    public var isSingleAddress: Bool { prefix == network.count * 8 }

    /// Whether `address` (text, as vigild names a peer) is in this range.
    public func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address), bytes.count == network.count else { return false }
        return Self.masked(bytes, prefix) == network
    }

    /// `10.0.0.0/8`, `192.0.2.7`
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(network.count == 4 ? AF_INET : AF_INET6, network, &text, socklen_t(text.count))
        let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return prefix == network.count * 8 ? address : "\(address)/\(prefix)"
    }

    /// The address's bytes: 4 for IPv4 (an IPv4-mapped IPv6 address included), 16 for IPv6.
    static func bytes(_ text: String) -> [UInt8]? {
        var raw = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &raw) == 1 { return Array(raw.prefix(4)) }
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        if raw.prefix(10).allSatisfy({ $0 == 0 }) && raw[10] == 0xFF && raw[11] == 0xFF { return Array(raw[12...]) }
        return raw
    }

    static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let kept = max(0, min(8, prefix - index * 8))
            return kept == 8 ? byte : byte & ~(0xFF >> kept)
        }
    }
}
