/// An HTTP request target (`/ws?client=a`) taken apart on bytes: a target is bytes (RFC 3986),
/// and String's own `firstIndex(of:)`, `split` and `==` walk grapheme clusters and compare
/// canonical equivalents, which made routing a tenth of refusing a request.
public enum RequestTarget {
    /// `/ws?client=a` → `/ws` and `client=a`.
    public static func split(_ uri: String) -> (path: Substring, query: Substring) {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri[...], "") }
        return (uri[..<mark], uri[uri.utf8.index(after: mark)...])
    }

    /// `a=1&b&c=3` → `(a, 1)`, `(b, "")`, `(c, 3)`, still percent-encoded.
    public static func parameters(_ query: Substring) -> [(name: Substring, value: Substring)] {
        query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true).map { bytes in
            let pair = query[bytes.startIndex..<bytes.endIndex]
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return (pair, "") }
            return (query[bytes.startIndex..<equals], query[pair.utf8.index(after: equals)..<bytes.endIndex])
        }
    }
}
