#if canImport(Glibc)
    import Glibc
#endif

/// Reads the small files configuration points at: the config file itself, a target's
/// `headers_file`, the listener's PEM files. Errors name the file and what `what` calls it.
public enum TextFile {
    public static func read(path: String, what: String, limit: Int = 1 << 20) throws(ConfigurationError) -> String {
        let bytes = try bytes(path: path, what: what, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError("\(what) \(path) is not UTF-8 text")
        }
        return text
    }

    /// The file's bytes, at most `limit` (PEM files, which are read as bytes).
    public static func bytes(path: String, what: String, limit: Int = 1 << 20) throws(ConfigurationError) -> [UInt8] {
        guard let file = fopen(path, "r") else {
            throw ConfigurationError("cannot read \(what) \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes += chunk[..<count] }
            if count < chunk.count { break }
            if bytes.count > limit { throw ConfigurationError("\(what) \(path) is larger than \(limit >> 10) KiB") }
        }
        if ferror(file) != 0 {
            throw ConfigurationError("cannot read \(what) \(path): \(String(cString: strerror(errno)))")
        }
        return bytes
    }
}
