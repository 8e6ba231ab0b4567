import VigilSupervisor

/// Parsers for the textual forms settings take, shared by flags, environment and config files.
/// Each throws a message that says what was expected; the loader adds the key, value and source.
public enum ValueParsers {
    public struct Failure: Error, CustomStringConvertible {
        public var expected: String
        public var description: String { "expected \(expected)" }
    }

    static let maxDuration = Duration.seconds(24 * 3600)
    static let maxSize = 4 << 30

    /// `500ms`, `30s`, `2m`, `1.5s`, or `0` (off). Other units, bare numbers and negatives are refused.
    public static func duration(_ text: String) throws(Failure) -> Duration {
        let failure = Failure(expected: "a duration such as 500ms, 30s or 2m (or 0)")
        if text == "0" { return .zero }
        let units: [(suffix: String, nanos: Double)] = [("ms", 1e6), ("s", 1e9), ("m", 60e9)]
        guard let unit = units.first(where: { text.hasSuffix($0.suffix) }) else { throw failure }
        let number = text.dropLast(unit.suffix.count)
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            number.first != ".", number.last != ".",
            let value = Double(number)
        else { throw failure }
        let nanos = value * unit.nanos
        guard nanos <= Double(maxDuration.inNanoseconds) else {
            throw Failure(expected: "a duration of at most a day (1440m)")
        }
        guard nanos.rounded() == nanos || nanos >= 1 else { throw failure }
        return .nanoseconds(Int64(nanos.rounded()))
    }

    /// `65536`, `64KiB`, `1MiB`, `1GiB`.
    public static func size(_ text: String) throws(Failure) -> Int {
        let failure = Failure(expected: "a size in bytes, or with KiB, MiB or GiB (e.g. 64KiB)")
        let units: [(suffix: String, factor: Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("", 1)]
        let unit = units.first { text.hasSuffix($0.suffix) }!
        let number = text.dropLast(unit.suffix.count)
        guard !number.isEmpty, number.count <= 12, number.allSatisfy({ $0.isASCII && $0.isNumber }),
            let value = Int(number)
        else { throw failure }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: unit.factor)
        guard !overflow, bytes <= maxSize else { throw Failure(expected: "a size of at most 4GiB") }
        return bytes
    }

    /// A whole number within `range`.
    static func number(_ text: String, in range: ClosedRange<Int>) throws(Failure) -> Int {
        guard text.count <= 3, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
            range.contains(value)
        else {
            throw Failure(expected: "a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    static func count(_ text: String) throws(Failure) -> Int {
        guard text.count <= 12, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text) else {
            throw Failure(expected: "a whole number")
        }
        return value
    }

    /// An address, or `none` (no listener).
    static func optionalAddress(_ text: String) throws(Failure) -> ListenAddress? {
        if text == "none" { return nil }
        do {
            return try address(text)
        } catch {
            throw Failure(expected: "HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080, or none")
        }
    }

    /// `127.0.0.1:8080`, `localhost:8080`, `[::1]:8080`, `0.0.0.0:0`.
    static func address(_ text: String) throws(Failure) -> ListenAddress {
        let failure = Failure(expected: "HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw failure
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { throw failure }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" }),
            !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = Int(portText), port <= 65535
        else { throw failure }
        return ListenAddress(host: String(host), port: port)
    }

    /// A text message vigild sends or matches: 1 to 1024 bytes of UTF-8 without control characters.
    static func messageText(_ text: String) throws(Failure) -> String {
        guard (1...1024).contains(text.utf8.count),
            !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else {
            throw Failure(
                expected: "a text message of 1 to 1024 bytes without control characters, such as {\"type\":\"ping\"}")
        }
        return text
    }

    static func path(_ text: String) throws(Failure) -> String {
        guard text.hasPrefix("/"), text.count <= 256,
            text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "?" && $0 != "#" })
        else {
            throw Failure(expected: "an absolute URL path such as /ws (printable ASCII, no ? or #)")
        }
        return text
    }

    /// `same-origin`, or origins separated by commas: `https://app.example.com`,
    /// `https://*.example.com`, `*`; each may end in `/`, and is kept in canonical form.
    static func origins(_ text: String) throws(Failure) -> [OriginPattern]? {
        if text == "same-origin" { return nil }
        var patterns: [OriginPattern] = []
        for item in text.split(separator: ",").map({ String($0.trimmingSpaces) }) {
            do {
                patterns.append(try OriginPattern(item))
            } catch {
                switch error {
                case .notAnOrigin:
                    throw Failure(
                        expected:
                            "same-origin, or origins such as https://app.example.com, https://*.example.com or * (\"\(item)\" is not one)"
                    )
                case .path(let path):
                    throw Failure(
                        expected:
                            "origins without a path, such as https://app.example.com (\"\(item)\" has the path \"\(path)\"; an origin is a scheme, host and port)"
                    )
                }
            }
        }
        guard !patterns.isEmpty else { throw Failure(expected: "same-origin, or at least one origin") }
        return patterns
    }

    /// Permission bits in octal, `0600` to `0777`.
    static func fileMode(_ text: String) throws(Failure) -> UInt32 {
        guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }),
            let mode = UInt32(text, radix: 8),
            mode <= 0o777
        else { throw Failure(expected: "permission bits in octal, such as 0660") }
        guard mode & 0o600 == 0o600 else {
            throw Failure(expected: "a mode that lets the owner read and write (0600 or more), such as 0660")
        }
        return mode
    }

    /// A user or group name (or a numeric id), or `none`.
    static func accountName(_ text: String) throws(Failure) -> String? {
        if text == "none" { return nil }
        guard (1...32).contains(text.count),
            text.unicodeScalars.allSatisfy({
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                    || "_-.".unicodeScalars.contains($0)
            }),
            text.first != "-"
        else { throw Failure(expected: "a user or group name such as vigil (or a numeric id, or none)") }
        return text
    }

    /// `none`, or host names separated by commas (`status.example.com,vigil.internal`).
    static func hostNames(_ text: String) throws(Failure) -> [String] {
        if text == "none" { return [] }
        var names: [String] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = item.trimmingSpaces.lowercased()
            let labels = name.split(separator: ".", omittingEmptySubsequences: false)
            guard (1...253).contains(name.count),
                labels.allSatisfy({ label in
                    (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                        && label.unicodeScalars.allSatisfy {
                            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-"
                        }
                })
            else {
                throw Failure(
                    expected:
                        "none, or host names separated by commas such as status.example.com (\"\(item)\" is not one)")
            }
            names.append(name)
        }
        return names
    }

    /// `none`, or addresses and CIDR blocks separated by commas.
    static func addressRanges(_ text: String) throws(Failure) -> [AddressRange] {
        if text == "none" { return [] }
        var ranges: [AddressRange] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let range = AddressRange(item.trimmingSpaces) else {
                throw Failure(
                    expected:
                        "none, or IP addresses and CIDR blocks separated by commas such as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32 (\"\(item)\" is not one; a block's host bits must be zero)"
                )
            }
            if !ranges.contains(range) { ranges.append(range) }
        }
        return ranges
    }

    static func boolean(_ text: String) throws(Failure) -> Bool {
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw Failure(expected: "true or false (or yes/no, on/off)")
        }
    }

    /// `ws://HOST[:PORT]/PATH` or `wss://…`, or `none`.
    static func webSocketURL(_ text: String) throws(Failure) -> WebSocketURL? {
        if text == "none" { return nil }
        guard let url = WebSocketURL(text) else {
            throw Failure(expected: "a ws:// or wss:// URL such as ws://127.0.0.1:3000/socket (or none)")
        }
        return url
    }

    /// An absolute file path, or `none`.
    static func filePath(_ text: String) throws(Failure) -> String? {
        if text == "none" { return nil }
        guard text.hasPrefix("/"), !text.contains("\0") else {
            throw Failure(expected: "an absolute file path (or none)")
        }
        return text
    }

    /// A duration, or `inherit` (the same as the matching client-leg setting).
    static func inheritedDuration(_ text: String) throws(Failure) -> Duration? {
        if text == "inherit" { return nil }
        do {
            return try duration(text)
        } catch {
            throw Failure(expected: "a duration such as 500ms, 30s or 2m, 0, or inherit")
        }
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ text: String, of _: T.Type) throws(Failure) -> T
    where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            throw Failure(expected: "one of " + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }

    // MARK: - Canonical text (for --print-config)

    static func text(size: Int) -> String {
        for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where size % factor == 0 && size > 0 {
            return "\(size / factor)\(suffix)"
        }
        return "\(size)"
    }
}

extension Substring {
    /// Without leading and trailing spaces (list items in `a, b` form).
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
