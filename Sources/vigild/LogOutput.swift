import Logging
import NIOConcurrencyHelpers
import VigilRegistry

#if canImport(Glibc)
    import Glibc
#endif

/// The log backends vigild can bootstrap: a human line or a JSON object per record, on stderr.
/// Chosen once at start-up (swift-log's API/backend split); a journald backend comes later.
struct StderrLogHandler: LogHandler {
    enum Format: Sendable {
        case text
        case json
    }

    let label: String
    let format: Format
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line =
            switch format {
            case .text: Self.textLine(label: label, event: event, metadata: merged)
            case .json: Self.jsonLine(label: label, event: event, metadata: merged)
            }
        StandardError.write(line)
    }

    /// `2026-11-22T05:11:20.123Z notice vigild: message key=value key2="two words"`. One record is
    /// one line whatever it holds: control characters in the message are escaped, and a value
    /// that is not a plain token is quoted and escaped, so a close reason or a client name can
    /// neither start a line of its own (a forged `<0>` priority on journald's stdout stream)
    /// nor pass for another field, nor send escape sequences to a terminal.
    static func textLine(label: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        var line = "\(Timestamp.now().rfc3339) \(event.level) \(label): \(LogText.escaped("\(event.message)"))"
        line.reserveCapacity(line.utf8.count + 40 * metadata.count)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " \(LogText.escaped(key))=" + LogText.value("\(value)")
        }
        return line + "\n"
    }

    /// `{"ts":"…","level":"notice","label":"vigild","message":"…","key":"value"}`
    static func jsonLine(label: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        var fields = [
            ("ts", Timestamp.now().rfc3339), ("level", "\(event.level)"), ("label", label),
            ("message", "\(event.message)"),
        ]
        let reserved = Set(fields.map(\.0))
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where !reserved.contains(key) {
            fields.append((key, "\(value)"))
        }
        return "{" + fields.map { JSONText.quoted($0.0) + ":" + JSONText.quoted($0.1) }.joined(separator: ",") + "}\n"
    }
}

/// Whole lines to stderr, one write(2) each, so lines from different event loops never interleave.
enum StandardError {
    private static let lock = NIOLockedValueBox(())

    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        lock.withLockedValue { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes {
                    Glibc.write(2, $0.baseAddress! + offset, $0.count - offset)
                }
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
        bytes.removeAll()
    }
}

enum JSONText {
    /// A JSON string: quotes and backslashes escaped, and every control character (C0, DEL, C1)
    /// and the line separators U+2028/U+2029 written as `\uXXXX`.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where LogText.isControl(scalar):
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Text made safe for one log line.
enum LogText {
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// Control characters written as JSON escapes (`\n`, `\u001b`); everything else as it is.
    static func escaped(_ text: String) -> String {
        // Fast path over the UTF-8 (every close writes some twenty of these): printable ASCII
        // needs no look at scalars; anything else is checked scalar by scalar.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        let quoted = JSONText.quoted(text)
        return String(quoted.dropFirst().dropLast())
    }

    /// A metadata value: bare when it is a plain token (letters, digits and `. _ : / @ + - , [ ] %`),
    /// else quoted and escaped as a JSON string. The empty value is `""`.
    static func value(_ text: String) -> String {
        let plain = !text.isEmpty && text.utf8.allSatisfy { isTokenByte[Int($0)] }
        return plain ? text : JSONText.quoted(text)
    }

    /// The bytes of a plain token, by value (any byte of a non-ASCII scalar is ≥ 0x80: not plain).
    private static let isTokenByte: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "._:/@+-,[]%".utf8.contains(UInt8(byte))
        }
    }
}
