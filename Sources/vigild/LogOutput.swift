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

    /// `2026-11-22T05:11:20.123Z notice vigild: message key=value key2=value2`
    static func textLine(label: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        var line = "\(Timestamp.now().rfc3339) \(event.level) \(label): \(event.message)"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let text = "\(value)"
            let quoted = text.isEmpty || text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
            line += " \(key)=" + (quoted ? JSONText.quoted(text) : text)
        }
        return line + "\n"
    }

    /// `{"ts":"…","level":"notice","label":"vigild","message":"…","key":"value"}`
    static func jsonLine(label: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        var fields = [
            ("ts", Timestamp.now().rfc3339), ("level", "\(event.level)"), ("label", label), ("message", "\(event.message)"),
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
                let written = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
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
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
