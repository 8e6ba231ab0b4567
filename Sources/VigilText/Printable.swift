/// Text from a peer or a file made safe to quote in a message, a log line or a response body.
public enum Printable {
    /// The value with control characters escaped (`\u{1b}`), capped at `limit` Unicode scalars
    /// (then `…`). Refusals are answered at the rate junk arrives, so this looks at no more of
    /// the value than it keeps, and builds one string (not one per scalar, nor counting the
    /// grapheme clusters of a 16 KiB header: that was a third of refusing one).
    public static func escaped(_ text: Substring, limit: Int = 80) -> String {
        // Most values have no control character: then the first `limit` scalars are copied whole.
        var scalars = 0
        var end = text.utf8.startIndex
        var clean = true
        for index in text.utf8.indices {
            let byte = text.utf8[index]
            if byte & 0xC0 != 0x80 {  // not a continuation byte: a scalar starts here
                if scalars == limit { break }
                scalars += 1
            }
            if byte < 0x20 || byte == 0x7F {
                clean = false
                break
            }
            end = text.utf8.index(after: index)
        }
        if clean {
            return end == text.endIndex ? String(text) : String(text[..<end]) + "…"
        }
        var result = ""
        var kept = 0
        for scalar in text.unicodeScalars {
            guard kept < limit else { return result + "…" }
            if scalar.value < 0x20 || scalar.value == 0x7F {
                result += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
            kept += 1
        }
        return result
    }

    public static func escaped(_ text: String, limit: Int = 80) -> String {
        escaped(text[...], limit: limit)
    }
}
