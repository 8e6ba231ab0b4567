import NIOCore
import Testing

@testable import VigilClient

/// The chunked body of an upstream's refusal, as a proxy reads it to pass it on.
@Suite("Chunked refusal bodies")
struct ChunkedBodyReaderTests {
    /// Feeds `wire` in pieces of `step` bytes; the body and how it ended.
    func read(_ wire: String, step: Int = .max, limit: Int = 4096) -> (String, ChunkedBodyReader.Progress) {
        var reader = ChunkedBodyReader()
        var body: [UInt8] = []
        let bytes = Array(wire.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + min(step, bytes.count))
            var buffer = ByteBuffer(bytes: bytes[start..<end])
            let progress = reader.read(&buffer, into: &body, limit: limit)
            if progress != .needMore { return (String(decoding: body, as: UTF8.self), progress) }
            start = end
        }
        return (String(decoding: body, as: UTF8.self), .needMore)
    }

    @Test("chunks are joined, in one read or byte by byte", arguments: [Int.max, 1, 3])
    func joined(step: Int) {
        let (body, progress) = read("5\r\nhello\r\n6;lang=en\r\n world\r\nA\r\n, go away\n\r\n0\r\n\r\n", step: step)
        #expect(body == "hello world, go away\n")
        #expect(progress == .complete)
    }

    @Test("a body over the limit is cut at the limit")
    func cut() {
        let chunk = String(repeating: "x", count: 3000)
        let (body, progress) = read("BB8\r\n\(chunk)\r\nBB8\r\n\(chunk)\r\n0\r\n\r\n", step: 700, limit: 4096)
        #expect(body.count == 4096)
        #expect(progress == .complete)
    }

    @Test("an unfinished body asks for more")
    func unfinished() {
        #expect(read("5\r\nhel") == ("hel", .needMore))
    }

    @Test("what is not chunked says why")
    func malformed() {
        #expect(read("zz\r\nhello\r\n") == ("", .malformed("invalid chunk size \"zz\"")))
        #expect(read("\r\n") == ("", .malformed("invalid chunk size \"\"")))
        #expect(read("5\r\nhelloXX") == ("hello", .malformed("chunk data not followed by CRLF")))
        let long = String(repeating: "1", count: 2000)
        #expect(read(long).1 == .malformed("chunk-size line longer than 1024 bytes"))
        #expect(read("10000000000000000\r\n").1 == .malformed("invalid chunk size \"10000000000000000\""))
        for size in ["-1", "+5", "1 0", "0x5", " 5"] {
            #expect(read("\(size)\r\nhello\r\n0\r\n\r\n").1 == .malformed("invalid chunk size \"\(size)\""), "\(size)")
        }
        #expect(read("5 ;ext\r\nhello\r\n0\r\n\r\n") == ("hello", .complete), "whitespace before ';' is allowed")
    }
}
