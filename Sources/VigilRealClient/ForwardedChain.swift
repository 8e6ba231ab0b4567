import VigilConfig

/// The hops a request came through, as the proxies in front of vigild wrote them: RFC 7239's
/// `Forwarded` (`for=192.0.2.7;proto=https, for="[2001:db8::1]:4711"`) or the older
/// `X-Forwarded-For` (`192.0.2.7, 10.0.0.2`) with `X-Forwarded-Proto`. Each proxy appends the
/// address it received the request from, so the list reads client first, nearest hop last.
/// Sans-IO: header values in, hops out.
public struct ForwardedChain: Sendable, Hashable {
    /// One hop: an IP address (or `nil`: `unknown`, an obfuscated name, or text that is no
    /// address), with the scheme the hop was reached by, if it says.
    public struct Hop: Sendable, Hashable {
        public var address: String?
        public var scheme: String?
    }

    public var hops: [Hop]

    /// From the request's `Forwarded` values (RFC 7239).
    public init(forwarded: [String]) {
        hops = forwarded.flatMap { Self.split($0, on: ",") }.compactMap(Self.forwardedHop)
    }

    /// From the request's `X-Forwarded-For` values, with `X-Forwarded-Proto` for the schemes
    /// (matched from the right when the counts differ).
    public init(forwardedFor: [String], forwardedProto: [String]) {
        let addresses = forwardedFor.flatMap { Self.split($0, on: ",") }.map(Self.trimmed).filter { !$0.isEmpty }
        let schemes = forwardedProto.flatMap { Self.split($0, on: ",") }.map { Self.trimmed($0).lowercased() }
        hops = addresses.enumerated().map { index, text in
            let fromRight = addresses.count - 1 - index
            let scheme = fromRight < schemes.count ? schemes[schemes.count - 1 - fromRight] : nil
            return Hop(address: Self.address(text), scheme: scheme.flatMap { $0.isEmpty ? nil : $0 })
        }
    }

    /// The client, walking from the nearest hop back while each hop is a trusted proxy
    /// (nginx's `real_ip_recursive on`): the first address that is not trusted; the farthest
    /// one if all are. `nil` when the walk meets a hop that names no address before that (the
    /// address vigild has stays).
    public func client(trusting trusted: [AddressRange]) -> Hop? {
        var candidate: Hop?
        for hop in hops.reversed() {
            guard let address = hop.address else { return candidate }
            candidate = hop
            if !trusted.contains(where: { $0.contains(address) }) { return hop }
        }
        return candidate
    }

    // MARK: - Parsing

    /// One `Forwarded` element's `for` and `proto` (`for=192.0.2.7;proto=https;by=…`).
    static func forwardedHop(_ element: Substring) -> Hop? {
        var node: String?
        var scheme: String?
        var repeated = false
        for pair in split(element, on: ";") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            let name = trimmed(pair[..<equals]).lowercased()
            var value = trimmed(pair[pair.index(after: equals)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = unquoted(value.dropFirst().dropLast())
            }
            if name == "for" {
                repeated = repeated || node != nil
                node = value
            } else if name == "proto" {
                scheme = value.lowercased()
            }
        }
        guard let node else { return nil }
        // RFC 7239 §4: a parameter appears once per element; one that repeats names nobody.
        return Hop(address: repeated ? nil : address(node), scheme: scheme)
    }

    /// The IP address in a node: `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::1]`,
    /// `[2001:db8::1]:4711`, a bare IPv6 address (X-Forwarded-For writes them so); `nil` for
    /// `unknown`, `_obfuscated` and anything else.
    static func address(_ node: String) -> String? {
        var text = Substring(node)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            text = text[text.index(after: text.startIndex)..<close]
        } else if text.filter({ $0 == ":" }).count == 1 {
            text = text[..<text.firstIndex(of: ":")!]  // IPv4 with a port
        }
        guard let range = AddressRange(String(text)), range.isSingleAddress else { return nil }
        return range.description
    }

    /// A quoted-string's content: `\x` is `x`.
    static func unquoted(_ text: Substring) -> String {
        var result = ""
        var escaped = false
        for character in text {
            if character == "\\" && !escaped {
                escaped = true
                continue
            }
            escaped = false
            result.append(character)
        }
        return result
    }

    /// Splits on `separator` outside double quotes.
    static func split<S: StringProtocol>(_ text: S, on separator: Character) -> [Substring] {
        var parts: [Substring] = []
        var quoted = false
        var start = text.startIndex
        var index = text.startIndex
        let whole = Substring(text)
        while index != whole.endIndex {
            let character = whole[index]
            if character == "\"" { quoted.toggle() }
            if character == separator && !quoted {
                parts.append(whole[start..<index])
                start = whole.index(after: index)
            }
            index = whole.index(after: index)
        }
        parts.append(whole[start...])
        return parts
    }

    static func trimmed<S: StringProtocol>(_ text: S) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
