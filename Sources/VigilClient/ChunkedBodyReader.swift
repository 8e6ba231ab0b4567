import NIOCore
import VigilText

/// Reads a `Transfer-Encoding: chunked` body (RFC 9112 §7.1) as it arrives, keeping at most a
/// limit of its bytes: the body of an upstream's refusal, which a proxy passes on (a backend
/// framework that streams its error pages sends them chunked). The response is not reused, so
/// the reader stops at the last chunk or at the limit, and trailers are not read.
struct ChunkedBodyReader {
    enum Progress: Equatable {
        /// More bytes are needed.
        case needMore
        /// The last chunk arrived, or the body reached the limit.
        case complete
        /// Not a chunked body; the reason names what was wrong.
        case malformed(String)
    }

    private enum Position {
        case sizeLine([UInt8])
        case data(remaining: Int)
        case dataEnd(remaining: Int)
    }

    /// A chunk-size line longer than this (the size and any chunk extensions) is not accepted.
    static let maxSizeLine = 1024

    private var position = Position.sizeLine([])

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...70).contains(byte) || (97...102).contains(byte)
    }

    /// Takes what `buffer` holds into `body`, up to `limit` bytes of body in all.
    mutating func read(_ buffer: inout ByteBuffer, into body: inout [UInt8], limit: Int) -> Progress {
        while buffer.readableBytes > 0 {
            switch position {
            case .sizeLine(var line):
                let byte = buffer.readInteger(as: UInt8.self)!
                guard byte == UInt8(ascii: "\n") else {
                    line.append(byte)
                    guard line.count <= Self.maxSizeLine else {
                        return .malformed("chunk-size line longer than \(Self.maxSizeLine) bytes")
                    }
                    position = .sizeLine(line)
                    continue
                }
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                // chunk-size [BWS ";" extensions]: hex digits only (no sign, no inner space).
                var digits = line.prefix { $0 != UInt8(ascii: ";") }[...]
                while let last = digits.last, last == UInt8(ascii: " ") || last == 9 { digits.removeLast() }
                guard !digits.isEmpty, digits.count <= 15, digits.allSatisfy(Self.isHexDigit),
                    let size = Int(String(decoding: digits, as: UTF8.self), radix: 16)
                else {
                    return .malformed(
                        "invalid chunk size \"\(Printable.escaped(String(decoding: line, as: UTF8.self)))\"")
                }
                if size == 0 { return .complete }
                position = .data(remaining: size)
            case .data(let remaining):
                let take = min(remaining, buffer.readableBytes)
                let keep = min(take, limit - body.count)
                body += buffer.readBytes(length: keep) ?? []
                buffer.moveReaderIndex(forwardBy: take - keep)
                if body.count >= limit { return .complete }
                position = remaining == take ? .dataEnd(remaining: 2) : .data(remaining: remaining - take)
            case .dataEnd(let remaining):
                let byte = buffer.readInteger(as: UInt8.self)!
                let expected = remaining == 2 ? UInt8(ascii: "\r") : UInt8(ascii: "\n")
                if byte == expected {
                    position = remaining == 2 ? .dataEnd(remaining: 1) : .sizeLine([])
                } else if byte == UInt8(ascii: "\n"), remaining == 2 {
                    position = .sizeLine([])  // a bare LF after the data, as lenient parsers take it
                } else {
                    return .malformed("chunk data not followed by CRLF")
                }
            }
        }
        return .needMore
    }
}
