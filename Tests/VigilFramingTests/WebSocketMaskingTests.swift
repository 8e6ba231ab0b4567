import NIOCore
import NIOWebSocket
import Testing

@testable import VigilFraming

@Suite("Masking eight bytes at a time")
struct WebSocketMaskingTests {
    /// The definition, RFC 6455 §5.3: byte i XOR key byte (i mod 4), done the slow way.
    static func reference(_ bytes: [UInt8], _ key: [UInt8], offset: Int) -> [UInt8] {
        bytes.enumerated().map { $0.element ^ key[($0.offset + offset) % 4] }
    }

    @Test("equals the byte-by-byte definition for every length around the word size and every offset")
    func matchesDefinition() {
        var random = SystemRandomNumberGenerator()
        for length in [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 63, 64, 65, 125, 1000] {
            for offset in 0..<4 {
                let key = (0..<4).map { _ in UInt8.random(in: 0...255, using: &random) }
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                var buffer = ByteBuffer(bytes: bytes)
                buffer.applyWebSocketMask(WebSocketMaskingKey(key)!, offset: offset)
                #expect(Array(buffer.readableBytesView) == Self.reference(bytes, key, offset: offset))
                // The same operation unmasks: twice is the identity.
                buffer.applyWebSocketMask(WebSocketMaskingKey(key)!, offset: offset)
                #expect(Array(buffer.readableBytesView) == bytes)
            }
        }
    }

    @Test("a buffer sharing its storage (a slice of what was read) is copied, not written through")
    func copiesSharedStorage() {
        let original = ByteBuffer(bytes: Array(0..<32))
        var slice = original.getSlice(at: 8, length: 16)!
        slice.applyWebSocketMask(WebSocketMaskingKey([1, 2, 3, 4])!)
        #expect(Array(original.readableBytesView) == Array(0..<32))
        #expect(Array(slice.readableBytesView) == Self.reference(Array(8..<24), [1, 2, 3, 4], offset: 0))
    }
}
