import CSystemd
import VigilServiceManager

#if canImport(Glibc)
    import Glibc
#endif

/// sd_listen_fds_with_names(3): listening sockets passed by socket activation.
///
/// vigild expects exactly two, named by `FileDescriptorName=` in its socket units: `ws` and
/// `status`. Anything else is a start-up error naming what was passed.
public enum SystemdListenSockets {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static let webSocketName = "ws"
    public static let statusName = "status"

    /// The passed sockets, or `nil` when vigild was not socket-activated (no `LISTEN_FDS`, or
    /// `LISTEN_PID` names another process). Clears the `LISTEN_*` variables either way.
    public static func take() throws(Failure) -> InheritedSockets? {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        guard count >= 0 else {
            throw Failure(
                description: "cannot read the sockets passed by socket activation: \(String(cString: strerror(-count)))"
            )
        }
        guard count > 0 else { return nil }
        defer {
            for index in 0..<Int(count) { free(names?[index]) }
            free(names)
        }
        let passed = (0..<Int(count)).map { index in
            (fd: SD_LISTEN_FDS_START + Int32(index), name: names?[index].map { String(cString: $0) } ?? "unknown")
        }
        return try select(passed)
    }

    /// Picks the `ws` and `status` descriptors out of what was passed.
    static func select(_ passed: [(fd: Int32, name: String)]) throws(Failure) -> InheritedSockets {
        let listing = passed.map { "\($0.name) (fd \($0.fd))" }.joined(separator: ", ")
        let expected = "expected exactly two, named \(webSocketName) and \(statusName) (FileDescriptorName=)"
        guard passed.count == 2,
            let webSocket = passed.first(where: { $0.name == webSocketName }),
            let status = passed.first(where: { $0.name == statusName })
        else {
            throw Failure(description: "socket activation passed \(passed.count) socket(s): \(listing); \(expected)")
        }
        return InheritedSockets(webSocket: webSocket.fd, status: status.fd)
    }
}
