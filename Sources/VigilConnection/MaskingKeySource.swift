import NIOWebSocket

#if canImport(Glibc)
    import Glibc
#endif

/// Masking keys for a client-role connection's frames, drawn from the kernel's random source
/// (RFC 6455 §5.3 and §10.3: unpredictable, from a strong source of entropy) 256 bytes per read
/// of `/dev/urandom` rather than one getrandom(2) per frame, which is what
/// `WebSocketMaskingKey.random()` costs: measured in proxy mode, that was a system call per
/// relayed message on top of its read and its write.
struct MaskingKeySource: RandomNumberGenerator {
    private static let wordsPerFill = 32
    private var words: [UInt64] = []
    private var index = 0

    mutating func key() -> WebSocketMaskingKey {
        WebSocketMaskingKey.random(using: &self)
    }

    mutating func next() -> UInt64 {
        if index == words.count { refill() }
        defer { index += 1 }
        return words[index]
    }

    private mutating func refill() {
        if words.isEmpty { words = [UInt64](repeating: 0, count: Self.wordsPerFill) }
        let filled = words.withUnsafeMutableBytes { buffer in
            urandom >= 0 && read(urandom, buffer.baseAddress, buffer.count) == buffer.count
        }
        if !filled {
            var system = SystemRandomNumberGenerator()
            for index in words.indices { words[index] = system.next() }
        }
        index = 0
    }
}

/// Opened once per process, on first use.
private let urandom: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
