import VigilConfig

#if canImport(Glibc)
    import Glibc
#endif

/// The `VIGIL_*` overrides vigild.service reads (`EnvironmentFile=-/etc/vigil/vigild.env`), read
/// the way systemd reads an environment file: `KEY=VALUE` lines, `#` and `;` comments, values
/// optionally in single or double quotes. A file that is not there is no overrides, as for the
/// unit (`-`); one that cannot be read is an error naming it.
enum EnvironmentFile {
    static let servicePath = "/etc/vigil/vigild.env"

    static func read(path: String) throws -> [String: String] {
        guard access(path, F_OK) == 0 else { return [:] }
        let text: String
        do {
            text = try TextFile.read(path: path, what: "environment file", limit: 64 << 10)
        } catch {
            throw Failure(message: "\(error)", exitCode: 2)
        }
        return parse(text)
    }

    static func parse(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            guard let first = line.first, first != "#", first != ";", let equals = line.firstIndex(of: "=") else {
                continue
            }
            let key = line[..<equals].trimmingCharacters(in: [" ", "\t"])
            var value = line[line.index(after: equals)...].trimmingCharacters(in: [" ", "\t"])
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
