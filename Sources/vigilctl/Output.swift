import VigilText

#if canImport(Glibc)
    import Glibc
#endif

/// How a command prints: a table (`-o wide` adds columns), or the API's JSON.
enum OutputFormat: String, Sendable, CaseIterable {
    case table
    case wide
    case json
}

/// Colour only on a terminal, and never with `NO_COLOR` set (https://no-color.org).
struct Palette: Sendable {
    let enabled: Bool

    static func forStandardOutput(environment: [String: String]) -> Palette {
        let noColor = environment["NO_COLOR"].map { !$0.isEmpty } ?? false
        return Palette(enabled: isatty(STDOUT_FILENO) == 1 && !noColor && environment["TERM"] != "dumb")
    }

    /// A close kind, a target state or a health status, coloured by how worrying it is; the
    /// word itself always says it (readable without colour).
    func word(_ text: String) -> String {
        guard enabled else { return text }
        let code: String? =
            switch text {
            case "normal", "up", "pass", "ready": "32"  // green
            case "going_away", "connecting", "backing_off", "starting": "36"  // cyan
            case "eof", "warn", "draining": "33"  // yellow
            case "abnormal", "down", "fail", "error": "31"  // red
            default: nil
            }
        return code.map { "\u{1B}[\($0)m\(text)\u{1B}[0m" } ?? text
    }

    func bold(_ text: String) -> String { enabled ? "\u{1B}[1m\(text)\u{1B}[0m" : text }
}

/// Left-aligned columns, two spaces apart; widths ignore colour escapes.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    /// Each column's width: its widest cell (the header's too).
    var widths: [Int] {
        var widths = headers.map(Self.visibleWidth)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], Self.visibleWidth(cell))
            }
        }
        return widths
    }

    func render(headers showHeaders: Bool, palette: Palette) -> String {
        let widths = self.widths
        var lines = rows.map { Self.line($0, widths: widths) }
        if showHeaders { lines.insert(palette.bold(Self.line(headers, widths: widths)), at: 0) }
        return lines.joined(separator: "\n")
    }

    /// One row padded to `widths` (a cell wider than its column pushes the rest along).
    static func line(_ cells: [String], widths: [Int]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 || index >= widths.count
                ? cell : cell + String(repeating: " ", count: max(0, widths[index] - visibleWidth(cell)))
        }.joined(separator: "  ")
    }

    static func visibleWidth(_ text: String) -> Int {
        var width = 0
        var inEscape = false
        for scalar in text.unicodeScalars {
            if inEscape {
                if scalar == "m" { inEscape = false }
            } else if scalar == "\u{1B}" {
                inEscape = true
            } else {
                width += 1
            }
        }
        return width
    }
}

/// Times and durations as an operator reads them.
enum Format {
    /// Seconds since the epoch of `2026-12-02T07:14:36.028Z`.
    static func epochSeconds(_ text: String) -> Double? {
        let parts = text.split(whereSeparator: { "-T:Z".contains($0) })
        guard parts.count == 6, let year = Int32(parts[0]), let month = Int32(parts[1]), let day = Int32(parts[2]),
            let hour = Int32(parts[3]), let minute = Int32(parts[4]), let second = Double(parts[5])
        else { return nil }
        var fields = tm()
        fields.tm_year = year - 1900
        fields.tm_mon = month - 1
        fields.tm_mday = day
        fields.tm_hour = hour
        fields.tm_min = minute
        fields.tm_sec = 0
        return Double(timegm(&fields)) + second
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// `850ms`, `12s`, `3m12s`, `2h05m`, `3d4h` (milliseconds rounded).
    static func duration(seconds: Double) -> String {
        DurationText.human(.milliseconds(Int64((seconds * 1000).rounded())))
    }

    /// How long ago a timestamp was.
    static func age(_ timestamp: JSONValue) -> String {
        guard let text = timestamp.string, let then = epochSeconds(text) else { return "-" }
        return duration(seconds: max(0, now() - then))
    }

    static func milliseconds(_ value: JSONValue) -> String {
        guard let ms = value.number else { return "-" }
        return ms < 10 ? String(format2(ms)) + "ms" : "\(Int(ms.rounded()))ms"
    }

    /// Two decimals, without Foundation's formatting.
    static func format2(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(pad(hundredths % 100))"
    }

    private static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
