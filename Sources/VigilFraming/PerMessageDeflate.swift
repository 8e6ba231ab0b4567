import VigilText

/// permessage-deflate (RFC 7692): the offers and answers of its negotiation, for both roles.
/// Pure, so every rule of §7.1 is a unit test.
///
/// A server picks the first offer it can accept and answers with what it agreed; a malformed
/// offer is passed over, never a failed handshake (a client's offer cannot cost it the
/// connection). A client checks the server's answer against what it offered, and an answer
/// it cannot accept (an unknown parameter, an invalid value, more than it offered) fails the
/// dial (RFC 7692 §5).
public enum PerMessageDeflate {
    public static let name = "permessage-deflate"

    /// What one end agreed for the connection, in RFC 7692's words (server and client, whichever
    /// end this is).
    public struct Agreement: Sendable, Hashable {
        /// The server resets its compressor after each message.
        public var serverNoContextTakeover = false
        /// The client resets its compressor after each message.
        public var clientNoContextTakeover = false
        /// The window the server compresses with, at most (nil: 15).
        public var serverMaxWindowBits: Int?
        /// The window the client compresses with, at most (nil: 15).
        public var clientMaxWindowBits: Int?

        public init(
            serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
            serverMaxWindowBits: Int? = nil, clientMaxWindowBits: Int? = nil
        ) {
            self.serverNoContextTakeover = serverNoContextTakeover
            self.clientNoContextTakeover = clientNoContextTakeover
            self.serverMaxWindowBits = serverMaxWindowBits
            self.clientMaxWindowBits = clientMaxWindowBits
        }

        /// As a `Sec-WebSocket-Extensions` value: `permessage-deflate; server_no_context_takeover; …`.
        /// vigild's usual answer is a literal, which takes no memory: every connection keeps its
        /// agreement's text (in the status API and its close record).
        public var headerValue: String {
            if self == Agreement(serverNoContextTakeover: true, clientNoContextTakeover: true) {
                return "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            }
            var parts = [PerMessageDeflate.name]
            if serverNoContextTakeover { parts.append("server_no_context_takeover") }
            if clientNoContextTakeover { parts.append("client_no_context_takeover") }
            if let bits = serverMaxWindowBits { parts.append("server_max_window_bits=\(bits)") }
            if let bits = clientMaxWindowBits { parts.append("client_max_window_bits=\(bits)") }
            return parts.joined(separator: "; ")
        }

        /// What this end does with its own messages and the peer's, by role.
        public func directions(for role: WebSocketRole) -> (outbound: Direction, inbound: Direction) {
            let server = Direction(
                noContextTakeover: serverNoContextTakeover, windowBits: serverMaxWindowBits ?? 15)
            let client = Direction(
                noContextTakeover: clientNoContextTakeover, windowBits: clientMaxWindowBits ?? 15)
            return role == .server ? (server, client) : (client, server)
        }
    }

    /// One direction of a connection's compressed messages: whether the sender resets its
    /// context after each message, and the largest window (in bits) the sender may use.
    public struct Direction: Sendable, Hashable {
        public var noContextTakeover: Bool
        public var windowBits: Int
    }

    /// One permessage-deflate offer from a client, as parsed.
    public struct Offer: Sendable, Hashable {
        public var serverNoContextTakeover = false
        public var clientNoContextTakeover = false
        public var serverMaxWindowBits: Int?
        /// Present (with or without a value) when the client supports the parameter.
        public var clientMaxWindowBits: ClientWindowBits = .absent

        public enum ClientWindowBits: Sendable, Hashable {
            case absent
            /// Offered without a value: the client accepts any limit the server names.
            case supported
            case value(Int)
        }

        public init() {}

        /// As a `Sec-WebSocket-Extensions` element.
        public var headerValue: String {
            var parts = [PerMessageDeflate.name]
            if serverNoContextTakeover { parts.append("server_no_context_takeover") }
            if clientNoContextTakeover { parts.append("client_no_context_takeover") }
            if let bits = serverMaxWindowBits { parts.append("server_max_window_bits=\(bits)") }
            switch clientMaxWindowBits {
            case .absent: break
            case .supported: parts.append("client_max_window_bits")
            case .value(let bits): parts.append("client_max_window_bits=\(bits)")
            }
            return parts.joined(separator: "; ")
        }

        /// Whether an answer (parsed as an offer would be) is one a server may give to `offer`.
        func fits(_ offer: Offer) -> Bool {
            if offer.serverNoContextTakeover && !serverNoContextTakeover { return false }
            if let asked = offer.serverMaxWindowBits {
                guard let bits = serverMaxWindowBits, bits <= asked else { return false }
            }
            switch (clientMaxWindowBits, offer.clientMaxWindowBits) {
            case (.absent, _), (.value, .supported): return true
            case (.value(let bits), .value(let asked)): return bits <= asked
            default: return false
            }
        }
    }

    /// How one end negotiates (the settings' `compression*` keys).
    public struct Configuration: Sendable, Hashable {
        /// The largest window this end compresses with (9 to 15; 8 is asked of zlib as 9, whose
        /// matches stay within 250 bytes, inside an 8-bit window).
        public var maxWindowBits: Int
        /// This end resets its compressor after each message (a server may always declare it:
        /// its compressor is then shared by all connections on a loop).
        public var noContextTakeover: Bool
        /// Ask the peer to reset its compressor after each message (a server may add this
        /// unasked; it lets this end inflate with a shared stream instead of one per connection).
        public var requestPeerNoContextTakeover: Bool

        public init(maxWindowBits: Int = 15, noContextTakeover: Bool = true, requestPeerNoContextTakeover: Bool = true)
        {
            self.maxWindowBits = maxWindowBits
            self.noContextTakeover = noContextTakeover
            self.requestPeerNoContextTakeover = requestPeerNoContextTakeover
        }
    }

    // MARK: - Parsing

    /// The permessage-deflate offers among `Sec-WebSocket-Extensions` lines, in order, leaving
    /// out each one that is malformed or has a parameter vigil does not know (a server passes
    /// over those).
    public static func offers(in headerLines: [String]) -> [Offer] {
        extensions(in: headerLines).compactMap { name, parameters in
            name.lowercased() == Self.name ? offer(parameters) : nil
        }
    }

    /// Every extension of the header lines: name and parameters (names lowercased, values
    /// unquoted); `nil` parameters for an element that does not parse.
    static func extensions(in headerLines: [String]) -> [(name: String, parameters: [(String, String?)]?)] {
        var result: [(String, [(String, String?)]?)] = []
        for line in headerLines {
            for element in splitOutsideQuotes(line, separator: ",") {
                let parts = splitOutsideQuotes(element, separator: ";").map(trimmed)
                guard let name = parts.first, isToken(name) else {
                    if !parts.allSatisfy({ $0.isEmpty }) { result.append((parts.first ?? "", nil)) }
                    continue
                }
                var parameters: [(String, String?)] = []
                var valid = true
                for part in parts.dropFirst() {
                    guard let parameter = parameter(part) else {
                        valid = false
                        break
                    }
                    parameters.append(parameter)
                }
                result.append((name, valid ? parameters : nil))
            }
        }
        return result
    }

    static func offer(_ parameters: [(String, String?)]?) -> Offer? {
        guard let parameters else { return nil }
        var offer = Offer()
        var seen = Set<String>()
        for (name, value) in parameters {
            guard seen.insert(name).inserted else { return nil }  // each at most once
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                offer.serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                offer.clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let bits = windowBits(value) else { return nil }
                offer.serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value {
                    guard let bits = windowBits(value) else { return nil }
                    offer.clientMaxWindowBits = .value(bits)
                } else {
                    offer.clientMaxWindowBits = .supported
                }
            default:
                return nil  // an unknown parameter: this offer cannot be accepted
            }
        }
        return offer
    }

    // MARK: - Server

    /// The agreement a server answers with: the first offer it accepts, or `nil` (no
    /// extension) when there is none it can accept.
    public static func accept(_ offers: [Offer], configuration: Configuration) -> Agreement? {
        for offer in offers {
            var agreement = Agreement()
            // This end's own window: the client's limit if it set one, within ours.
            let ownBits = min(offer.serverMaxWindowBits ?? 15, configuration.maxWindowBits)
            agreement.serverMaxWindowBits = offer.serverMaxWindowBits != nil || ownBits < 15 ? ownBits : nil
            agreement.serverNoContextTakeover = offer.serverNoContextTakeover || configuration.noContextTakeover
            agreement.clientNoContextTakeover =
                offer.clientNoContextTakeover || configuration.requestPeerNoContextTakeover
            if case .value(let bits) = offer.clientMaxWindowBits {
                agreement.clientMaxWindowBits = bits  // the client's own limit, confirmed
            }
            return agreement
        }
        return nil
    }

    // MARK: - Client

    /// The offer a client sends (one, in the header value's form).
    public static func offerHeader(configuration: Configuration) -> String {
        var parts = [
            name,
            "client_max_window_bits" + (configuration.maxWindowBits < 15 ? "=\(configuration.maxWindowBits)" : ""),
        ]
        if configuration.noContextTakeover { parts.append("client_no_context_takeover") }
        if configuration.requestPeerNoContextTakeover { parts.append("server_no_context_takeover") }
        return parts.joined(separator: "; ")
    }

    /// Why a server's answer cannot be accepted (the dial fails with it).
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// The agreement in a server's `Sec-WebSocket-Extensions` answer to `offerHeader(configuration:)`;
    /// `nil` when it agreed to no extension. Throws for an answer RFC 7692 §5 says to fail on:
    /// an extension not offered, an unknown parameter, an invalid value, a window larger than
    /// offered, or `server_no_context_takeover` missing when vigil asked for it. (A server may
    /// add `server_no_context_takeover`, `client_no_context_takeover` and `server_max_window_bits`
    /// unasked, §7.1.1.1, §7.1.1.2, §7.1.2.1.)
    public static func agreement(inAnswer headerLines: [String], configuration: Configuration) throws(Refusal)
        -> Agreement?
    {
        guard let answer = try answer(in: headerLines, from: "the server") else { return nil }
        var agreement = Agreement(
            serverNoContextTakeover: answer.serverNoContextTakeover,
            clientNoContextTakeover: answer.clientNoContextTakeover, serverMaxWindowBits: answer.serverMaxWindowBits)
        if case .value(let bits) = answer.clientMaxWindowBits {
            guard bits <= configuration.maxWindowBits else {
                throw Refusal(
                    description:
                        "the server's client_max_window_bits=\(bits) is over the \(configuration.maxWindowBits) vigil offered"
                )
            }
            agreement.clientMaxWindowBits = bits
        }
        if configuration.requestPeerNoContextTakeover && !agreement.serverNoContextTakeover {
            throw Refusal(description: "the server did not agree to server_no_context_takeover, which vigil asked for")
        }
        if configuration.noContextTakeover { agreement.clientNoContextTakeover = true }
        if configuration.maxWindowBits < 15 && agreement.clientMaxWindowBits == nil {
            agreement.clientMaxWindowBits = configuration.maxWindowBits
        }
        return agreement
    }

    // MARK: - A proxy's upstream leg

    /// The agreement in an upstream's answer to offers a proxy forwarded from its client, or
    /// `nil` for no extension. Throws unless the answer is one the server could give to one of
    /// the offers (RFC 7692 §7.1): the client would fail the connection on it anyway.
    public static func agreement(inAnswer headerLines: [String], forOffers offers: [Offer]) throws(Refusal)
        -> Agreement?
    {
        guard let answer = try answer(in: headerLines, from: "the upstream") else { return nil }
        guard offers.contains(where: answer.fits) else {
            throw Refusal(
                description:
                    "the upstream's answer \"\(Printable.escaped(answer.headerValue))\" fits none of the client's offers"
            )
        }
        var clientBits: Int?
        if case .value(let bits) = answer.clientMaxWindowBits { clientBits = bits }
        return Agreement(
            serverNoContextTakeover: answer.serverNoContextTakeover,
            clientNoContextTakeover: answer.clientNoContextTakeover,
            serverMaxWindowBits: answer.serverMaxWindowBits, clientMaxWindowBits: clientBits)
    }

    /// A server's permessage-deflate answer, every parameter checked, or `nil` when there is
    /// none; throws a refusal naming what is wrong (the peer's text escaped and cut short).
    /// `who` names the server in it.
    static func answer(in headerLines: [String], from who: String) throws(Refusal) -> Offer? {
        let answered = extensions(in: headerLines)
        guard !answered.isEmpty else { return nil }
        let text = "\"" + Printable.escaped(headerLines.joined(separator: ", ")) + "\""
        guard answered.count == 1, let (name, parameters) = answered.first, name.lowercased() == Self.name else {
            throw Refusal(
                description: "\(who) answered with extensions \(text); only one permessage-deflate was offered")
        }
        guard let parameters else {
            throw Refusal(description: "\(who)'s permessage-deflate answer \(text) does not parse")
        }
        var answer = Offer()
        var seen = Set<String>()
        for (parameter, value) in parameters {
            let named = Printable.escaped(parameter) + (value.map { "=" + Printable.escaped($0) } ?? "")
            guard seen.insert(parameter).inserted else {
                throw Refusal(
                    description: "\(who)'s permessage-deflate answer names \(Printable.escaped(parameter)) twice")
            }
            switch parameter {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else {
                    throw Refusal(description: "\(who)'s permessage-deflate answer has \(named): it takes no value")
                }
                if parameter == "server_no_context_takeover" {
                    answer.serverNoContextTakeover = true
                } else {
                    answer.clientNoContextTakeover = true
                }
            case "server_max_window_bits", "client_max_window_bits":
                guard let bits = windowBits(value) else {
                    throw Refusal(
                        description: value == nil
                            ? "\(who)'s permessage-deflate answer has \(named) without a value (an answer gives one)"
                            : "\(who)'s permessage-deflate answer has \(named): window bits are 8 to 15")
                }
                if parameter == "server_max_window_bits" {
                    answer.serverMaxWindowBits = bits
                } else {
                    answer.clientMaxWindowBits = .value(bits)
                }
            default:
                throw Refusal(
                    description:
                        "\(who)'s permessage-deflate answer has \(named), which permessage-deflate does not define")
            }
        }
        return answer
    }

    // MARK: - Helpers

    /// 8 to 15, as decimal digits without a sign or leading zero.
    static func windowBits(_ text: String?) -> Int? {
        guard let text, (1...2).contains(text.count), text.first != "0", text.allSatisfy(\.isASCII),
            let bits = Int(text), (8...15).contains(bits)
        else { return nil }
        return bits
    }

    /// `name` or `name=value` (a token, or a quoted string whose content is a token, RFC 6455 §9.1).
    static func parameter(_ text: String) -> (String, String?)? {
        guard let equals = text.firstIndex(of: "=") else {
            return isToken(text) ? (text.lowercased(), nil) : nil
        }
        let name = trimmed(String(text[..<equals]))
        var value = trimmed(String(text[text.index(after: equals)...]))
        if value.count >= 2, value.first == "\"", value.last == "\"" {
            value = String(value.dropFirst().dropLast())
        }
        guard isToken(name), isToken(value) else { return nil }
        return (name.lowercased(), value)
    }

    static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
    }

    static func trimmed(_ text: String) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    static func trimmed(_ text: Substring) -> String { trimmed(String(text)) }

    /// Splits at `separator` outside double quotes.
    static func splitOutsideQuotes(_ text: String, separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        for character in text {
            if character == "\"" { quoted.toggle() }
            if character == separator && !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }
}
