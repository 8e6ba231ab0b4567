import Logging
import NIOCore
import NIOPosix
import Testing
import VigilClient
import VigilConfig
import VigilRegistry
import VigilServer
import VigilSupervisor

/// A real vigild server on loopback ports chosen by the kernel, with real clients.
struct TestServer {
    let server: VigilServer
    let port: Int
    static let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    static func start(_ flags: [String: String] = [:]) async throws -> TestServer {
        var all = ["listen": "127.0.0.1:0", "status_listen": "127.0.0.1:0"]
        all.merge(flags) { _, new in new }
        let configuration = try SettingsLoader.resolve(flags: all, environment: [:], file: nil)
        let server = VigilServer(
            configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            group: nil)
        try await server.start()
        return TestServer(server: server, port: server.webSocketAddress!.port!)
    }

    var registry: ConnectionRegistry { server.registry }

    func connect(_ target: String = "/ws", options: WebSocketClientOptions = .init()) async throws -> WebSocketClient {
        try await WebSocketClient.connect(
            host: "127.0.0.1", port: port, target: target, options: options, group: Self.clientGroup)
    }

    /// Waits (up to `timeout`) until `count` close records exist, and returns them newest first.
    func closes(count: Int = 1, timeout: Duration = .seconds(5)) async throws -> [CloseRecord] {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            let (matched, records) = registry.closes(limit: 10_000)
            if matched >= count { return records }
            try await Task.sleep(for: .milliseconds(5))
        }
        let found = registry.closes(limit: 10_000).records
        Issue.record("expected \(count) close records within \(timeout), found \(found.count): \(found.map(\.outcome))")
        return found
    }

    func stop() async {
        await server.shutdown()
    }
}

extension WebSocketClient {
    /// The next event, or `nil` when the stream ends or `timeout` passes.
    func nextEvent(timeout: Duration = .seconds(5)) async -> WebSocketClientEvent? {
        await withTaskGroup(of: WebSocketClientEvent?.self) { group in
            group.addTask {
                var iterator = self.events.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Events until the stream ends (the connection closed) or `timeout` passes.
    func remainingEvents(timeout: Duration = .seconds(5)) async -> [WebSocketClientEvent] {
        var collected: [WebSocketClientEvent] = []
        while let event = await nextEvent(timeout: timeout) { collected.append(event) }
        return collected
    }
}

func outcome(
    _ kind: CloseKind, _ code: UInt16, _ cause: CloseCause, _ initiator: CloseInitiator, clean: Bool,
    reason: String = ""
) -> CloseOutcome {
    CloseOutcome(kind: kind, code: code, cause: cause, initiator: initiator, clean: clean, reason: reason)
}

/// The HTTP status of a refused dial, if that is what `error` is.
func refusalStatus(_ error: any Error) -> Int? {
    if case .refused(let refusal) = error as? DialFailure { refusal.status } else { nil }
}
