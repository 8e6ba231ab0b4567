import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import VigilConfig
import VigilHost

#if canImport(Glibc)
    import Glibc
#endif

/// The status API's listeners — TCP (`status_listen`, or an inherited socket) and optionally a
/// Unix socket (`status_socket`) — on an event loop of their own: encoding a page of records for
/// a slow or greedy client never delays a WebSocket connection's pings, nor the watchdog.
public final class StatusListener: Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let router: StatusRouter
    private let settings: VigilSettings
    private let limit: StatusConnectionLimit
    private let access: NIOLockedValueBox<StatusAccess>
    private let channels = NIOLockedValueBox<[any Channel]>([])
    private let socketPath = NIOLockedValueBox<String?>(nil)

    /// The output a status connection may have unwritten before vigild stops reading from it.
    static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 32 << 10, high: 128 << 10)

    public init(router: StatusRouter, settings: VigilSettings, access: StatusAccess) {
        self.router = router
        self.settings = settings
        self.limit = StatusConnectionLimit(maximum: settings.statusMaxConnections)
        self.access = NIOLockedValueBox(access)
    }

    /// A reload's new token and host names.
    public func replaceAccess(_ new: StatusAccess) {
        access.withLockedValue { $0 = new }
    }

    /// Binds `address` (or adopts `inherited`); a Unix-domain inherited socket is served as the
    /// Unix socket is.
    public func listenTCP(_ address: ListenAddress, inherited: Int32?) async throws -> any Channel {
        let channel: any Channel
        if let inherited {
            channel = try await bootstrap(transport: Self.isUnixSocket(inherited) ? .unixSocket : .tcp).withBoundSocket(
                inherited
            ).get()
        } else {
            channel = try await bootstrap(transport: .tcp).bind(host: address.host, port: address.port).get()
        }
        channels.withLockedValue { $0.append(channel) }
        return channel
    }

    /// Binds `status_socket`, then gives it its mode, owner and group. A stale socket file (no
    /// one listening) is replaced; a live one is an error, as is any file that is not a socket.
    public func listenUnixSocket(_ path: String) async throws -> any Channel {
        try Self.checkUnused(path)
        let channel = try await bootstrap(transport: .unixSocket).bind(
            unixDomainSocketPath: path, cleanupExistingSocketFile: true
        ).get()
        socketPath.withLockedValue { $0 = path }
        channels.withLockedValue { $0.append(channel) }
        do {
            try Self.setOwnership(path, owner: settings.statusSocketOwner, group: settings.statusSocketGroup)
            guard chmod(path, mode_t(settings.statusSocketMode)) == 0 else {
                throw StartupError(
                    message:
                        "cannot set status_socket \(path) to mode \(String(settings.statusSocketMode, radix: 8)): \(Self.lastError)"
                )
            }
        } catch {
            try? await close()
            throw error
        }
        return channel
    }

    /// Closes the listeners and the connections on them, removes the socket file, and stops the loop.
    public func close() async throws {
        let open = channels.withLockedValue { channels in
            defer { channels = [] }
            return channels
        }
        for channel in open { try? await channel.close() }
        if let path = socketPath.withLockedValue({ path in
            defer { path = nil }
            return path
        }) {
            unlink(path)
        }
    }

    public func shutdown() async {
        try? await close()
        try? await group.shutdownGracefully()
    }

    // MARK: - Private

    private func bootstrap(transport: StatusAccess.Transport) -> ServerBootstrap {
        let router = self.router
        let limit = self.limit
        let access = self.access
        let requestTimeout = settings.statusRequestTimeout
        let idleTimeout = settings.statusIdleTimeout
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer(AcceptPause.install)
            .childChannelOption(.writeBufferWaterMark, value: Self.writeBufferWaterMark)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connectionGuard = StatusConnectionGuard(
                        limit: limit, requestTimeout: requestTimeout, idleTimeout: idleTimeout)
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(connectionGuard)
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: false)
                    try pipeline.addHandler(
                        StatusHTTPHandler(
                            router: router, access: { access.withLockedValue { $0 } }, transport: transport,
                            connectionGuard: connectionGuard))
                }
            }
    }

    private static func isUnixSocket(_ descriptor: Int32) -> Bool {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return result == 0 && address.ss_family == sa_family_t(AF_UNIX)
    }

    private static var lastError: String { String(cString: strerror(errno)) }

    /// Refuses a path another process is serving, or one that is not a socket.
    private static func checkUnused(_ path: String) throws {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }  // nothing there
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw StartupError(
                message: "status_socket \(path) exists and is not a socket; remove it or choose another path")
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard probe >= 0 else { return }
        defer { Glibc.close(probe) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw StartupError(message: "status_socket \(path) is longer than a Unix socket path may be (107 bytes)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected == 0 {
            throw StartupError(message: "status_socket \(path) is in use: another process is listening on it")
        }
    }

    private static func setOwnership(_ path: String, owner: String?, group: String?) throws {
        guard owner != nil || group != nil else { return }
        var uid = uid_t.max  // -1: unchanged
        var gid = gid_t.max
        if let owner {
            if let id = uid_t(owner) {
                uid = id
            } else if let entry = getpwnam(owner) {
                uid = entry.pointee.pw_uid
            } else {
                throw StartupError(message: "status_socket_owner \(owner) is not a user on this system")
            }
        }
        if let group {
            if let id = gid_t(group) {
                gid = id
            } else if let entry = getgrnam(group) {
                gid = entry.pointee.gr_gid
            } else {
                throw StartupError(message: "status_socket_group \(group) is not a group on this system")
            }
        }
        guard chown(path, uid, gid) == 0 else {
            throw StartupError(
                message:
                    "cannot give status_socket \(path) to owner \(owner ?? "(unchanged)") and group \(group ?? "(unchanged)"): \(lastError)"
            )
        }
    }
}
