import Testing

@testable import VigilFraming

@Suite("UTF-8 validation")
struct UTF8ValidatorTests {
    static let valid: [[UInt8]] = [
        [], Array("hello".utf8), Array("κόσμε".utf8), Array("𝄞 music".utf8), Array(repeating: 0x41, count: 33),
        [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF
        [0xEF, 0xBF, 0xBF],  // U+FFFF
        [0xED, 0x9F, 0xBF],  // U+D7FF, just below the surrogates
    ]
    static let invalid: [[UInt8]] = [
        [0x80],  // stray continuation
        [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xF0, 0x80, 0x80, 0xAF],  // overlongs
        [0xED, 0xA0, 0x80],  // surrogate U+D800
        [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        [0xF5, 0x80, 0x80, 0x80], [0xFF],
        Array("abcdefgh".utf8) + [0xCE, 0x41],  // lead followed by ASCII
    ]

    @Test("accepts valid UTF-8", arguments: valid)
    func acceptsValid(bytes: [UInt8]) {
        var validator = UTF8Validator()
        let accepted = validator.validate(bytes)
        #expect(accepted && validator.isComplete)
    }

    @Test("rejects invalid UTF-8", arguments: invalid)
    func rejectsInvalid(bytes: [UInt8]) {
        var validator = UTF8Validator()
        let accepted = validator.validate(bytes)
        #expect(!accepted)
    }

    @Test("a scalar split across fragments is fine; an unfinished one is incomplete")
    func splitScalar() {
        var validator = UTF8Validator()
        let first = validator.validate([0xF0, 0x9D])
        #expect(first)
        #expect(!validator.isComplete)
        let second = validator.validate([0x84, 0x9E])
        #expect(second)
        #expect(validator.isComplete)
    }

    @Test("agrees with the standard library on every split of pseudo-random byte strings")
    func agreesWithStandardLibrary() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [
            0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0x9F, 0xA0, 0x90, 0x8F,
        ]
        for _ in 0..<3000 {
            let length = Int.random(in: 0...9, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            let split = Int.random(in: 0...length, using: &generator)
            var validator = UTF8Validator()
            let result =
                validator.validate(bytes[..<split]) && validator.validate(bytes[split...]) && validator.isComplete
            #expect(result == expected, "\(bytes.map { String($0, radix: 16) }) split at \(split)")
        }
    }
}
