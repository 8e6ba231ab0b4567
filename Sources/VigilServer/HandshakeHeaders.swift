import NIOHTTP1
import VigilHost
import VigilText

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
                status: .badRequest, reason: .missingConnectionUpgrade,
                message:
                    "Connection \"\(Printable.escaped(connection.joined(separator: ", ")[...]))\" does not name upgrade, which a WebSocket handshake must (RFC 6455 4.2.1)"
            )
        }
        let versions = headers["sec-websocket-version"]
        guard versions.count == 1, versions[0] == "13" else {
            return HandshakeRejection(
                status: .upgradeRequired, reason: .unsupportedVersion,
                message:
                    "unsupported Sec-WebSocket-Version \"\(Printable.escaped(versions.joined(separator: ",")[...]))\"; this server speaks version 13",
                extraHeaders: [("Sec-WebSocket-Version", "13")])
        }
        let keys = headers["sec-websocket-key"]
        guard keys.count == 1, isValidKey(keys[0][...]) else {
            return HandshakeRejection(
                status: .badRequest, reason: .invalidKey,
                message:
                    "invalid Sec-WebSocket-Key \"\(Printable.escaped(keys.joined(separator: ",")[...]))\"; expected the base64 of 16 bytes"
            )
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
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "+")
                || byte == UInt8(ascii: "/")
        }
    }
}
