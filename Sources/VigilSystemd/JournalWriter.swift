import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// Writes journal entries with sd_journal_sendv(3), and knows whether they arrived.
///
/// sd_journal_sendv returns 0 (success) when the journal socket does not exist at all: the
/// entry is silently dropped. So after a 0 the socket's presence is checked; an entry that
/// could not be delivered is reported as `false`, and the caller writes it elsewhere.
public struct JournalWriter: Sendable {
    public static let socketPath = "/run/systemd/journal/socket"

    public init() {}

    /// Sends one entry of `FIELD=value` pairs; `false` when journald did not get it.
    public func send(_ fields: [(name: String, value: String)]) -> Bool {
        let entries = fields.map { Array("\($0.name)=\($0.value)".utf8) }
        let result = Self.withIOVectors(entries) { vectors in
            sd_journal_sendv(vectors.baseAddress, Int32(vectors.count))
        }
        return result == 0 && Self.socketExists()
    }

    /// Whether journald's socket accepts a connection now (not merely exists).
    public static func isReachable() -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in socketPath.utf8.enumerated() { path[index] = byte }
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        } == 0
    }

    static func socketExists() -> Bool {
        var info = stat()
        return stat(socketPath, &info) == 0
    }

    private static func withIOVectors<R>(_ entries: [[UInt8]], _ body: (UnsafeBufferPointer<iovec>) -> R) -> R {
        var vectors: [iovec] = []
        vectors.reserveCapacity(entries.count)
        func build(_ index: Int) -> R {
            guard index < entries.count else { return vectors.withUnsafeBufferPointer(body) }
            return entries[index].withUnsafeBytes { bytes in
                vectors.append(
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
                return build(index + 1)
            }
        }
        return build(0)
    }
}
