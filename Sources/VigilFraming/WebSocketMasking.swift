import NIOCore
import NIOWebSocket

/// RFC 6455 §5.3 masking (the same XOR masks and unmasks), eight bytes at a time.
///
/// NIO's `webSocketMask` goes byte by byte through the key's collection subscript: about eleven
/// instructions a byte, measured under callgrind — 700 for a 64-byte message, 180,000 for a
/// 16 KiB one. This is the same operation on 64-bit words.
public enum WebSocketMasking {
    /// XORs `bytes` in place with `key` repeated, as if the bytes began `offset` bytes into the
    /// masked payload (a message's later fragment, a payload masked in pieces).
    public static func apply(_ key: WebSocketMaskingKey, to bytes: UnsafeMutableRawBufferPointer, offset: Int = 0) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let keyBytes = (key[0], key[1], key[2], key[3])
        // The key as it lies in memory from `offset` on, as a little- or big-endian word alike:
        // byte i of the word is key byte (offset + i) % 4.
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { word in
            withUnsafeBytes(of: keyBytes) { key in
                for index in 0..<8 { word[index] = key[(offset + index) & 3] }
            }
        }
        var index = 0
        let count = bytes.count
        while index + 8 <= count {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            base.storeBytes(of: word ^ pattern, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        withUnsafeBytes(of: pattern) { pattern in
            while index < count {
                base.storeBytes(
                    of: base.load(fromByteOffset: index, as: UInt8.self) ^ pattern[index & 7], toByteOffset: index,
                    as: UInt8.self)
                index += 1
            }
        }
    }
}

extension ByteBuffer {
    /// The readable bytes XORed in place with `key` (`WebSocketMasking.apply`); a buffer that
    /// shares its storage is copied first, as any write to it is.
    public mutating func applyWebSocketMask(_ key: WebSocketMaskingKey, offset: Int = 0) {
        withUnsafeMutableReadableBytes { WebSocketMasking.apply(key, to: $0, offset: offset) }
    }
}
