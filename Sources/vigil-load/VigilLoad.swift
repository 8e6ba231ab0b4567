import ArgumentParser
import FoundationEssentials
import NIOCore
import NIOPosix
import Synchronization
import VigilClient
import VigilConfig
import VigilConnection
import VigilFraming
import VigilSupervisor

#if canImport(Glibc)
    import Glibc
#endif

/// `vigil-load`: opens many WebSocket connections to a server and holds them (answering pings
/// or not), or runs echo round trips, then closes cleanly and prints what it saw as JSON lines.
/// With `--echo-peer` it is instead one well-behaved client that echoes whatever the server
/// sends (Autobahn|Testsuite's fuzzingserver tests vigil's client side through it).
@main
struct VigilLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil-load",
        abstract: "A WebSocket load generator on vigil's client framing core.",
        discussion: """
            Prints one JSON object per line: {"event":"connected",…} once the connections are open, \
            {"event":"echo",…} after an echo run, and {"event":"done",…} at the end. Stops by itself: \
            after --duration, when the server has closed every connection, or at --deadline. \
            With --echo-peer: one connection to --url (path and query as given) that sends back every \
            text and binary message unchanged until the server closes; exits 0 then, 1 if it cannot connect.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case hold, echo, greet
    }

    @Option(help: "Server URL.") var url = "ws://127.0.0.1:8080/ws"
    @Option(name: [.short, .long], help: "Connections to open.") var connections = 100
    @Option(
        help: """
            hold: keep the connections open; echo: round trips, one message in flight per connection; \
            greet: one round trip per connection, then hold (the memory of connections that have used \
            their extensions once).
            """)
    var mode = Mode.hold
    @Flag(help: "Do not answer pings (a peer that is alive on TCP but dead to the heartbeat).") var noPong = false
    @Option(help: "How long to hold or echo (500ms, 20s, 2m).") var duration = "10s"
    @Option(help: "Echo message size in bytes.") var messageSize = 64
    @Option(
        help:
            "Echo message content: filler (binary, all 'x') or json (text, price quotes, compressible as real traffic)."
    )
    var payload = EchoPayload.filler
    @Option(
        help: """
            Echo: messages a second in all, spread evenly over the connections and sent when due \
            whether or not earlier echoes are back, each timed from when it was due (open loop). \
            0: one in flight per connection, the next when the echo returns (closed loop).
            """)
    var rate = 0.0
    @Option(help: "Loopback source addresses to spread connections over (127.0.0.1 up to 127.0.0.254).")
    var sources = 254
    @Option(help: "Connection attempts in flight at once.") var concurrency = 256
    @Option(help: "Hard stop, whatever happens (default: duration + 60s).") var deadline: String?
    @Option(help: "Event loop threads.") var threads = System.coreCount
    @Flag(help: "Leave the connections open at the end instead of closing them with 1000.") var noClose = false
    @Option(help: "Print a progress line this often (0: never).") var progress = "0"
    @Flag(help: "Connect once to --url and echo every message until the server closes.") var echoPeer = false
    @Flag(help: "Offer permessage-deflate, and compress and inflate as the server agrees.") var deflate = false
    @Option(help: "PEM certificates trusted for a wss:// --url, besides the system's.") var caFile: String?
    @Option(help: "Largest frame accepted from the server.") var maxFrame = "16MiB"
    @Option(help: "Largest message accepted from the server.") var maxMessage = "16MiB"

    /// The client shell's rules: vigild's defaults for closing and slow consumers, no pings of
    /// its own (the server's heartbeat is what is measured).
    private func configuration() throws -> SupervisedConnectionHandler.Configuration {
        let defaults = VigilSettings.defaults
        var policy = defaults.supervisionPolicy
        policy.pingInterval = .zero
        let limits = FramingLimits(
            maxFrameSize: try parseSize(maxFrame, "--max-frame"),
            maxMessageSize: try parseSize(maxMessage, "--max-message"))
        policy.backlogCeiling = policy.maxBacklog + limits.maxMessageSize
        var configuration = SupervisedConnectionHandler.Configuration(role: .client, policy: policy, limits: limits)
        configuration.answersPings = !noPong
        return configuration
    }

    func validate() throws {
        guard rate.isFinite, rate == 0 || (0.001...10_000_000).contains(rate) else {
            throw ValidationError(
                "--rate: \(rate) is not a rate; 0 (closed loop) or 0.001 to 10000000 messages a second")
        }
    }

    func run() async throws {
        if echoPeer {
            try await runEchoPeer()
            return
        }
        let holdFor = try parseDuration(duration, "--duration")
        let hardStop = try deadline.map { try parseDuration($0, "--deadline") } ?? holdFor + .seconds(60)
        guard let target = WebSocketURL(url) else {
            throw ValidationError("--url: \"\(url)\" is not a ws:// or wss://HOST:PORT/PATH URL")
        }
        _ = OpenFileLimit.raiseToHardLimit()
        Task.detached {
            try? await Task.sleep(for: hardStop)
            Self.emit(["event": "deadline", "seconds": hardStop.inMilliseconds / 1000])
            Glibc.exit(3)
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let stats = LoadStats()
        let every = try parseDuration(progress, "--progress")
        if every > .zero {
            Task.detached {
                while true {
                    try? await Task.sleep(for: every)
                    Self.emit([
                        "event": "progress", "open": stats.open.load(ordering: .relaxed),
                        "pings": stats.pings.load(ordering: .relaxed),
                        "pongs_sent": stats.pongsSent.load(ordering: .relaxed),
                        "echoes": stats.echoes.load(ordering: .relaxed),
                    ])
                }
            }
        }
        let started = ContinuousClock.now
        let channels = try await connectAll(target: target, stats: stats, group: group)
        Self.emit([
            "event": "connected", "connections": channels.count, "failed": stats.failed.load(ordering: .relaxed),
            "seconds": (ContinuousClock.now - started).inMilliseconds / 1000,
        ])

        switch mode {
        case .hold, .greet:
            if mode == .greet {
                // One message each; the echo loop is off, so the echo is not answered again.
                let (size, payload) = (messageSize, payload)
                for channel in channels {
                    channel.eventLoop.execute {
                        let shell = try? channel.pipeline.syncOperations.handler(type: SupervisedConnectionHandler.self)
                        (shell?.sink as? LoadConnection)?.startEcho(messageSize: size, payload: payload)
                    }
                }
                let greetBy = ContinuousClock.now + .seconds(60)
                while stats.echoes.load(ordering: .relaxed) < channels.count && ContinuousClock.now < greetBy {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                Self.emit(["event": "greeted", "echoes": stats.echoes.load(ordering: .relaxed)])
            }
            let end = ContinuousClock.now + holdFor
            while ContinuousClock.now < end && stats.open.load(ordering: .relaxed) > 0 {
                try? await Task.sleep(for: .milliseconds(50))
            }
        case .echo:
            stats.echoing.store(true, ordering: .relaxed)
            let echoStart = ContinuousClock.now
            let size = messageSize
            let payload = payload
            // Paced: each connection sends every N/rate seconds (at least 1 µs apart, at most an
            // hour), the connections' phases spread evenly over one interval so the total is steady.
            let interval =
                rate > 0
                ? TimeAmount.nanoseconds(Int64(min(3600e9, max(1e3, Double(max(1, channels.count)) / rate * 1e9))))
                : nil
            let start = NIODeadline.now() + .milliseconds(10)
            for (index, channel) in channels.enumerated() {
                let phase = interval.map {
                    TimeAmount.nanoseconds($0.nanoseconds * Int64(index) / Int64(max(1, channels.count)))
                }
                channel.eventLoop.execute {
                    let shell = try? channel.pipeline.syncOperations.handler(type: SupervisedConnectionHandler.self)
                    guard let load = shell?.sink as? LoadConnection else { return }
                    if let interval, let phase {
                        load.startPacedEcho(messageSize: size, payload: payload, every: interval, from: start + phase)
                    } else {
                        load.startEcho(messageSize: size, payload: payload)
                    }
                }
            }
            try? await Task.sleep(for: holdFor)
            stats.echoing.store(false, ordering: .relaxed)
            let elapsed = (ContinuousClock.now - echoStart).inMilliseconds / 1000
            let echoes = stats.echoes.load(ordering: .relaxed)
            var report: [String: Any] = [
                "event": "echo", "messages": echoes, "seconds": elapsed, "rate": Double(echoes) / elapsed,
                "paced_rate": rate,
            ]
            for (key, value) in LoadStats.summary(stats.latency.withLockedValue { $0 }) { report[key] = value }
            Self.emit(report)
            try? await Task.sleep(for: .milliseconds(200))  // let the last round trips land
        }

        if !noClose {
            for channel in channels where channel.isActive {
                channel.pipeline.fireUserInboundEventTriggered(
                    CloseRequest(LocalClose(code: CloseStatus.normal, reason: "", cause: .shutdown)))
            }
            let closeBy = ContinuousClock.now + .seconds(10)
            while stats.open.load(ordering: .relaxed) > 0 && ContinuousClock.now < closeBy {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        var done: [String: Any] = [
            "event": "done", "connected": stats.connected.load(ordering: .relaxed),
            "failed": stats.failed.load(ordering: .relaxed), "pings": stats.pings.load(ordering: .relaxed),
            "pongs_sent": stats.pongsSent.load(ordering: .relaxed), "still_open": stats.open.load(ordering: .relaxed),
            "dropped_without_close": stats.dropped.load(ordering: .relaxed),
            "server_close_codes": stats.closeCodes.withLockedValue { $0 },
            "seconds": (ContinuousClock.now - started).inMilliseconds / 1000,
        ]
        let detection = stats.detection.withLockedValue { $0 }
        if detection.totalCount > 0 {
            done["detection"] = LoadStats.summary(detection)
        }
        Self.emit(done)
        for channel in channels { try? await channel.close() }
        try? await group.shutdownGracefully()
    }

    /// `--deflate`: permessage-deflate offered, with vigild's own defaults.
    private var extensionOffer: UpgradeRequest.ExtensionOffer {
        deflate
            ? .deflate(
                PerMessageDeflate.Configuration(requestPeerNoContextTakeover: false), DeflateOptions(),
                WebSocketClientBootstrap.deflateStreams) : .none
    }

    /// One connection to `--url` with an echo sink, until the server closes it.
    private func runEchoPeer() async throws {
        guard let target = WebSocketURL(url) else {
            throw ValidationError("--url: \"\(url)\" is not a ws:// or wss:// URL")
        }
        let configuration = try configuration()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel: any Channel
        do {
            let tls = target.secure ? try WebSocketDialer.TLS(caFile: caFile) : nil
            channel = try await WebSocketDialer.dial(
                UpgradeRequest(url: target, extensions: extensionOffer), on: group.next(), timeout: .seconds(30),
                tls: tls,
                configuration: configuration, wheels: WebSocketClientBootstrap.wheels,
                makeParts: { _, _ in (EchoSink(), EchoPeerObserver()) }
            ).get().channel
        } catch {
            Self.emit(["event": "connect_failed", "error": "\(error)"])
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        try? await channel.closeFuture.get()
        try? await group.shutdownGracefully()
    }

    /// Opens `connections` connections, `concurrency` attempts at a time.
    private func connectAll(target: WebSocketURL, stats: LoadStats, group: any EventLoopGroup) async throws
        -> [any Channel]
    {
        let answerPings = !noPong
        let configuration = try configuration()
        let tls = target.secure ? try WebSocketDialer.TLS(caFile: caFile) : nil
        let sourceCount = max(1, min(sources, 254))
        return await withTaskGroup(of: (any Channel)?.self) { tasks in
            var opened: [any Channel] = []
            opened.reserveCapacity(connections)
            var next = 0
            func launch() {
                let index = next
                next += 1
                tasks.addTask {
                    let source =
                        target.host.hasPrefix("127.")
                        ? try? SocketAddress(ipAddress: "127.0.0.\(1 + index % sourceCount)", port: 0) : nil
                    do {
                        let channel = try await WebSocketClientBootstrap.connect(
                            host: target.host, port: target.port,
                            target: target.path + "?" + (target.query.isEmpty ? "" : target.query + "&")
                                + "client=load-\(index)",
                            localAddress: source, configuration: configuration, group: group,
                            extensions: extensionOffer, tls: tls,
                            makeParts: {
                                let connection = LoadConnection(stats: stats, answerPings: answerPings)
                                return (connection, connection)
                            })
                        stats.connected.add(1, ordering: .relaxed)
                        stats.open.add(1, ordering: .relaxed)
                        channel.closeFuture.whenComplete { _ in stats.open.add(-1, ordering: .relaxed) }
                        return channel
                    } catch {
                        if stats.failed.add(1, ordering: .relaxed).newValue <= 3 {
                            Self.emit(["event": "connect_failed", "error": "\(error)"])
                        }
                        return nil
                    }
                }
            }
            while next < min(concurrency, connections) { launch() }
            while let result = await tasks.next() {
                if let channel = result { opened.append(channel) }
                if next < connections { launch() }
            }
            return opened
        }
    }

    private func parseSize(_ text: String, _ flag: String) throws -> Int {
        do {
            return try ValueParsers.size(text)
        } catch {
            throw ValidationError("\(flag): \"\(text)\": \(error)")
        }
    }

    private func parseDuration(_ text: String, _ flag: String) throws -> Duration {
        do {
            return try ValueParsers.duration(text)
        } catch {
            throw ValidationError("\(flag): \"\(text)\": \(error)")
        }
    }

    static func emit(_ object: [String: Any]) {
        let body = object.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\(json($0.value))" }.joined(separator: ",")
        print("{\(body)}")
        fflush(nil)
    }

    private static func json(_ value: Any) -> String {
        switch value {
        case let text as String:
            return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        case let number as Double:
            return number.isFinite ? String(number) : "null"
        case let number as Int:
            return String(number)
        case let dictionary as [String: Int]:
            return "{"
                + dictionary.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        case let dictionary as [String: Double]:
            return "{"
                + dictionary.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\(json($0.value))" }.joined(separator: ",")
                + "}"
        default:
            return "\"\(value)\""
        }
    }
}

/// The echo peer's observer: it only says how the connection ended, on stderr.
final class EchoPeerObserver: ConnectionObserver {
    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {
        let line =
            "vigil-load: closed \(outcome.kind.rawValue)/\(outcome.cause.rawValue) code \(outcome.code) by \(outcome.initiator.rawValue)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
