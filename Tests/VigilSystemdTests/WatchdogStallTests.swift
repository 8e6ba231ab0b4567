import Foundation
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing
import VigilConfig
import VigilServer
import VigilServiceManager
import VigilSystemd

/// The real server, the real sd_notify (libsystemd) and a real datagram socket standing in for
/// the service manager: a stalled event loop must stop the WATCHDOG=1 keep-alives.
@Suite("Watchdog against a stalled event loop", .serialized, .timeLimit(.minutes(1)))
struct WatchdogStallTests {
    /// Receives notification datagrams on a temporary path, stamping each with the monotonic time.
    final class DatagramSink: Sendable {
        let path: String
        private let fd: Int32
        let received = NIOLockedValueBox<[(at: ContinuousClock.Instant, text: String)]>([])

        init() throws {
            path = "/tmp/vigil-watchdog-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { bytes in
                for (index, byte) in path.utf8.enumerated() { bytes[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(bound == 0)
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            Thread.detachNewThread { [self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    if count > 0 {
                        let text = String(decoding: buffer[..<count], as: UTF8.self)
                        received.withLockedValue { $0.append((ContinuousClock.now, text)) }
                    } else if count < 0 && errno != EAGAIN && errno != EINTR {
                        return
                    }
                }
            }
        }

        func pings(from start: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Int {
            received.withLockedValue { $0.filter { $0.text == "WATCHDOG=1" && $0.at >= start && $0.at <= end }.count }
        }

        func close() {
            shutdown(fd, Int32(SHUT_RDWR))
            Glibc.close(fd)
            unlink(path)
        }
    }

    @Test("no WATCHDOG=1 while one event loop is stalled; keep-alives resume after")
    func stalledLoop() async throws {
        let sink = try DatagramSink()
        defer { sink.close() }
        setenv("NOTIFY_SOCKET", sink.path, 1)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": sink.path]))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let configuration = try SettingsLoader.resolve(
            flags: ["listen": "127.0.0.1:0", "status_listen": "127.0.0.1:0"], environment: [:], file: nil)
        let server = VigilServer(
            configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            group: group, manager: ServiceManagerContext(notifier: notifier, watchdogInterval: .milliseconds(400)))
        let services = ServiceGroup(
            configuration: .init(
                services: [.init(service: server)],
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })))
        let running = Task { try await services.run() }

        // Wait for the keep-alives to flow (start-up can be slow on a loaded machine or under a sanitizer).
        let flowing = ContinuousClock.now + .seconds(20)
        while sink.pings(from: .now - .seconds(60), to: .now) < 2 && ContinuousClock.now < flowing {
            try await Task.sleep(for: .milliseconds(50))
        }
        let stallStart = ContinuousClock.now
        // Block one event loop for 1.5 s, as a runaway computation would.
        group.any().execute { usleep(1_500_000) }
        try await Task.sleep(for: .milliseconds(1600))
        let stallEnd = stallStart + .milliseconds(1500)
        try await Task.sleep(for: .milliseconds(1500))

        let before = sink.pings(from: stallStart - .seconds(1), to: stallStart)
        // The last beat before the stall may be up to half an interval old when a ping is due:
        // allow half an interval plus one ping period for the keep-alives to stop.
        let during = sink.pings(from: stallStart + .milliseconds(450), to: stallEnd)
        let after = sink.pings(from: stallEnd + .milliseconds(300), to: stallEnd + .milliseconds(1500))
        // Keep-alives go every 200 ms; the counts below allow for a slow machine (or ThreadSanitizer).
        #expect(before >= 1, "keep-alives before the stall")
        #expect(during == 0, "no keep-alive while a loop is stalled")
        #expect(after >= 1, "keep-alives resume once the loop turns again")

        await services.triggerGracefulShutdown()
        try await running.value
        try await group.shutdownGracefully()
        unsetenv("NOTIFY_SOCKET")
    }
}
