/// Incremental UTF-8 validation (Unicode Table 3-7: no overlongs, surrogates or code points
/// above U+10FFFF), fed one fragment at a time so an invalid text message fails at the first
/// bad fragment rather than after the whole message arrived.
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected for the current scalar.
    private var pending: UInt8 = 0
    /// Bounds for the next continuation byte (tighter than 0x80...0xBF right after some lead bytes).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// Whether everything fed so far ends on a scalar boundary.
    public var isComplete: Bool { pending == 0 }

    /// Feeds more bytes; returns `false` as soon as they cannot be UTF-8.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            if pending == 0 {
                // ASCII fast path, eight bytes at a time.
                while index + 8 <= count,
                    bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
                {
                    index += 8
                }
                guard index < count else { break }
                let byte = bytes[index]
                index += 1
                if byte < 0x80 { continue }
                guard startScalar(byte) else { return false }
            } else {
                let byte = bytes[index]
                index += 1
                guard byte >= lower && byte <= upper else { return false }
                lower = 0x80
                upper = 0xBF
                pending -= 1
            }
        }
        return true
    }

    /// Convenience for whole byte sequences.
    public mutating func validate(_ bytes: some Sequence<UInt8>) -> Bool {
        let array = Array(bytes)
        return array.withUnsafeBytes { validate($0) }
    }

    private mutating func startScalar(_ lead: UInt8) -> Bool {
        switch lead {
        case 0xC2...0xDF: pending = 1
        case 0xE0:
            pending = 2
            lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: pending = 2
        case 0xED:
            pending = 2
            upper = 0x9F  // no UTF-16 surrogates
        case 0xF0:
            pending = 3
            lower = 0x90
        case 0xF1...0xF3: pending = 3
        case 0xF4:
            pending = 3
            upper = 0x8F  // nothing above U+10FFFF
        default: return false  // a stray continuation byte, an overlong lead or 0xF5...0xFF
        }
        return true
    }
}
