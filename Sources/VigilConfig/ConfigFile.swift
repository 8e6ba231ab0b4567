import Yams

#if canImport(Glibc)
import Glibc
#endif

/// A config file's settings as raw text, keyed as in the file (`ping_interval: 30s`).
///
/// YAML or JSON (JSON is read as YAML, of which it is a subset for flat objects). Only a flat
/// mapping of scalars is accepted: nesting, lists and empty values are errors naming the key.
public struct ConfigFile: Sendable, Hashable {
    public var path: String
    public var values: [String: String]

    public init(path: String, values: [String: String]) {
        self.path = path
        self.values = values
    }

    /// Reads and parses the file at `path`.
    public static func read(path: String) throws(ConfigurationError) -> ConfigFile {
        guard let file = fopen(path, "r") else {
            throw ConfigurationError("cannot read config file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes += chunk[..<count] }
            if count < chunk.count { break }
            if bytes.count > 1 << 20 { throw ConfigurationError("config file \(path) is larger than 1 MiB") }
        }
        if ferror(file) != 0 {
            throw ConfigurationError("cannot read config file \(path): \(String(cString: strerror(errno)))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError("config file \(path) is not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// Keys whose value may be written as a YAML list (the loader reads it as a comma-separated one).
    static let listKeys = Set(SettingCatalog.all.filter(\.list).map(\.key))

    public static func parse(_ text: String, path: String) throws(ConfigurationError) -> ConfigFile {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError("config file \(path) is not valid YAML or JSON: \(error)")
        }
        guard let root else { return ConfigFile(path: path, values: [:]) }  // empty file
        guard let mapping = root.mapping else {
            throw ConfigurationError("config file \(path) must hold a mapping of keys to values (key: value)")
        }
        var values: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw ConfigurationError("config file \(path) has a key that is not a plain name")
            }
            guard values[key] == nil else {
                throw ConfigurationError("key \(key) appears twice in config file \(path)")
            }
            let text: String
            if let scalar = valueNode.scalar {
                text = scalar.string
            } else if let items = valueNode.sequence, Self.listKeys.contains(key) {
                // A list of plain values reads as the same values joined by commas.
                let strings = items.compactMap { $0.scalar?.string }
                guard strings.count == items.count, !strings.contains(where: { $0.isEmpty || $0.contains(",") }) else {
                    throw ConfigurationError("key \(key) in config file \(path) must be a list of plain values")
                }
                text = strings.joined(separator: ",")
            } else {
                throw ConfigurationError("key \(key) in config file \(path) must have a single value, not a list or mapping")
            }
            guard !text.isEmpty else {
                throw ConfigurationError("key \(key) in config file \(path) has no value")
            }
            values[key] = text
        }
        return ConfigFile(path: path, values: values)
    }
}
