import NIOHTTP1

/// Why a WebSocket handshake is refused: the HTTP answer, a metric label and a message naming
/// the offending value (the response body and the log line).
struct HandshakeRejection: Error {
    var status: HTTPResponseStatus
    /// The `reason` label of `vigil_handshakes_rejected_total`.
    var reason: String
    /// The log line's text, and the body unless `body` is given.
    var message: String
    var extraHeaders: [(String, String)] = []
    /// A body of its own (a proxy passing on its upstream's refusal) and its content type.
    var body: (bytes: [UInt8], contentType: String)?
}

/// The request target of a WebSocket handshake, checked against the configured route.
/// Pure: no NIO channel involved, so every case is a unit test.
struct WebSocketRoute {
    /// `nil`: every path is accepted (proxy mode forwards whatever the client asked for).
    let path: String?

    /// How the route reads in messages.
    var description: String { path ?? "every path" }

    /// The longest client name accepted with `?client=`.
    static let maxClientNameLength = 64

    /// Returns the client name (if any) of an acceptable target, or why it is not acceptable.
    ///
    /// A request target is bytes (RFC 3986), so it is split and compared byte by byte, on
    /// `utf8` views: String's own `firstIndex(of:)`, `split` and `==` walk grapheme clusters
    /// and compare canonical equivalents, which made the route a tenth of refusing a request.
    func match(method: HTTPMethod, uri: String) -> Result<String?, HandshakeRejection> {
        let (requestPath, query) = Self.split(uri)
        guard path.map({ requestPath.utf8.elementsEqual($0.utf8) }) ?? true else {
            return .failure(
                HandshakeRejection(
                    status: .notFound, reason: "not_found",
                    message: "no WebSocket route at \(Self.printable(requestPath)); the route is \(description)"))
        }
        guard method == .GET else {
            return .failure(
                HandshakeRejection(
                    status: .methodNotAllowed, reason: "bad_method",
                    message: "a WebSocket handshake must use GET, not \(method.rawValue)",
                    extraHeaders: [("Allow", "GET")]))
        }
        var client: String?
        for (name, value) in Self.parameters(query) where name == "client" {
            guard let decoded = Self.percentDecoded(value), Self.isValidClientName(decoded) else {
                return .failure(
                    HandshakeRejection(
                        status: .badRequest, reason: "bad_client_name",
                        message: "client name \"\(Self.printable(value))\" must be 1 to \(Self.maxClientNameLength) printable ASCII characters"))
            }
            client = decoded
        }
        return .success(client)
    }

    /// Splits `/ws?client=a` into `/ws` and `client=a`.
    static func split(_ uri: String) -> (path: Substring, query: Substring) {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri[...], "") }
        return (uri[..<mark], uri[uri.utf8.index(after: mark)...])
    }

    static func parameters(_ query: Substring) -> [(name: Substring, value: Substring)] {
        query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true).map { bytes in
            let pair = query[bytes.startIndex..<bytes.endIndex]
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return (pair, "") }
            return (query[bytes.startIndex..<equals], query[pair.utf8.index(after: equals)..<bytes.endIndex])
        }
    }

    /// Decodes `%XX` escapes and `+`; `nil` for malformed escapes or non-UTF-8 results.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The inverse: every byte but RFC 3986's unreserved characters as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return result
    }

    static func isValidClientName(_ name: String) -> Bool {
        (1...maxClientNameLength).contains(name.utf8.count)
            && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// A value made safe to echo in a message: control characters escaped, capped at 80
    /// Unicode scalars. Refusals are answered at the rate junk arrives, so this looks at no
    /// more of the value than it keeps, and builds one string (not one per scalar, nor counting
    /// the grapheme clusters of a 16 KiB header: that was a third of refusing one).
    static func printable(_ text: Substring) -> String {
        // Most values have no control character: then the first 80 scalars are copied whole.
        var scalars = 0
        var end = text.utf8.startIndex
        var clean = true
        for index in text.utf8.indices {
            let byte = text.utf8[index]
            if byte & 0xC0 != 0x80 {  // not a continuation byte: a scalar starts here
                if scalars == 80 { break }
                scalars += 1
            }
            if byte < 0x20 || byte == 0x7F {
                clean = false
                break
            }
            end = text.utf8.index(after: index)
        }
        if clean {
            return end == text.endIndex ? String(text) : String(text[..<end]) + "…"
        }
        var result = ""
        var kept = 0
        for scalar in text.unicodeScalars {
            guard kept < 80 else { return result + "…" }
            if scalar.value < 0x20 || scalar.value == 0x7F {
                result += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
            kept += 1
        }
        return result
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension HandshakeRejection {
    /// Checks the WebSocket-specific headers (RFC 6455 §4.2.1); NIO's upgrader checks less.
    /// Each header's lines as sent (`headers[name]`), not split at commas as `canonicalForm`
    /// does: a list is refused either way, and splitting (String indices, grapheme by
    /// grapheme) was a tenth of handling a refused request.
    static func checkHeaders(_ headers: HTTPHeaders) -> HandshakeRejection? {
        // RFC 6455 4.2.1: `Connection` must name the upgrade. NIO's upgrade handler does not ask,
        // but NIO's parser (llhttp) stops at the end of the head only when it does: without the
        // token it parsed on, a request pipelined behind the handshake reached the WebSocket
        // decoder as HTTP after the 101, and NIO's type check there ended the process.
        let connection = headers["connection"]
        guard connection.contains(where: { hasToken("upgrade", in: $0) }) else {
            return HandshakeRejection(
                status: .badRequest, reason: "missing_connection_upgrade",
                message: "Connection \"\(WebSocketRoute.printable(connection.joined(separator: ", ")[...]))\" does not name upgrade, which a WebSocket handshake must (RFC 6455 4.2.1)")
        }
        let versions = headers["sec-websocket-version"]
        guard versions.count == 1, versions[0] == "13" else {
            return HandshakeRejection(
                status: .upgradeRequired, reason: "unsupported_version",
                message: "unsupported Sec-WebSocket-Version \"\(WebSocketRoute.printable(versions.joined(separator: ",")[...]))\"; this server speaks version 13",
                extraHeaders: [("Sec-WebSocket-Version", "13")])
        }
        let keys = headers["sec-websocket-key"]
        guard keys.count == 1, isValidKey(keys[0][...]) else {
            return HandshakeRejection(
                status: .badRequest, reason: "invalid_key",
                message: "invalid Sec-WebSocket-Key \"\(WebSocketRoute.printable(keys.joined(separator: ",")[...]))\"; expected the base64 of 16 bytes")
        }
        return nil
    }

    /// Whether a comma-separated header value lists `token` (ASCII letters, compared without
    /// regard to case), with optional spaces and tabs around each element. Walks the bytes in
    /// place: it runs on every handshake.
    static func hasToken(_ token: String, in value: String) -> Bool {
        let bytes = value.utf8
        var start = bytes.startIndex
        while true {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.endIndex
            var element = bytes[start..<end]
            while let first = element.first, first == 0x20 || first == 0x09 { element = element.dropFirst() }
            while let last = element.last, last == 0x20 || last == 0x09 { element = element.dropLast() }
            if element.elementsEqual(token.utf8, by: { $0 | 0x20 == $1 | 0x20 }) { return true }
            guard end != bytes.endIndex else { return false }
            start = bytes.index(after: end)
        }
    }

    /// 16 bytes in base64: 22 significant characters and `==`.
    static func isValidKey(_ key: Substring) -> Bool {
        let bytes = Array(key.utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        return bytes[..<22].allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/")
        }
    }
}
