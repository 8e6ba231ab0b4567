/// A host name as a TLS certificate entry or a route names it: `app.example.com`, or
/// `*.example.com`, which matches exactly one label in front of `example.com`. Kept lowercased
/// without a trailing dot; a name compared with it is normalised the same way.
public enum ServerNamePattern {
    /// The pattern as kept, or `nil` when `text` is not a host name (`*.` only as a whole first
    /// label, and never over a single label: `*.com` would match a whole top-level domain).
    public static func parse(_ text: String) -> String? {
        let name = normalised(text[...].trimmingSpaces)
        let wildcard = name.hasPrefix("*.")
        let rest = wildcard ? String(name.dropFirst(2)) : name
        guard let checked = try? ValueParsers.hostNames(rest), checked.count == 1 else { return nil }
        if wildcard && !rest.contains(".") { return nil }
        return wildcard ? "*." + rest : rest
    }

    /// Whether `name` (any case, maybe with a trailing dot) matches `pattern` (as `parse` keeps it).
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        let name = normalised(name)
        guard pattern.hasPrefix("*.") else { return pattern == name }
        let suffix = pattern.dropFirst(1)  // ".example.com"
        guard name.hasSuffix(suffix) else { return false }
        let label = name.dropLast(suffix.count)
        return !label.isEmpty && !label.contains(".")
    }

    /// A name as patterns keep theirs: lowercased, no trailing dot.
    public static func normalised<S: StringProtocol>(_ name: S) -> String {
        let lower = name.lowercased()
        return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }
}
