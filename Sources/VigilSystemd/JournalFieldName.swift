/// Turns a log metadata key into a valid journal field name.
///
/// journald accepts names of uppercase `A`–`Z`, digits and `_`, not starting with `_` (those are
/// trusted fields it sets itself) or a digit, at most 64 characters. The mapping: letters are
/// uppercased; every other character becomes `_`; leading underscores are dropped; a name that
/// then starts with a digit (or is empty) gets the prefix `F_`; the result is cut to 64. Keys
/// that would collide with the fields the journal backend writes itself (`MESSAGE`,
/// `PRIORITY`, `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`) get the prefix `META_`.
/// `ws_close_kind` → `WS_CLOSE_KIND`, `message_id` → `MESSAGE_ID`, `http.status` → `HTTP_STATUS`,
/// `_secret` → `SECRET`, `2fa` → `F_2FA`.
public enum JournalFieldName {
    public static let reserved: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
    ]
    public static let maxLength = 64

    public static func from(metadataKey key: String) -> String {
        var name = String(
            key.unicodeScalars.map { scalar -> Character in
                switch scalar {
                case "a"..."z": Character(String(scalar).uppercased())
                case "A"..."Z", "0"..."9": Character(scalar)
                default: "_"
                }
            })
        name = String(name.drop { $0 == "_" })
        if name.isEmpty || name.first!.isNumber { name = "F_" + name }
        if reserved.contains(name) { name = "META_" + name }
        return String(name.prefix(maxLength))
    }

    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.count <= maxLength && !name.hasPrefix("_") && !name.first!.isNumber
            && name.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }
}
