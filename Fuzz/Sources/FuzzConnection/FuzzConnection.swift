import FuzzSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import VigilConfig
import VigilConnection
import VigilServer
import VigilSupervisor

/// One event loop for every input, and the clock the server's connections are supervised by:
/// the loop's own, so advancing it fires pings, pong timeouts and read deadlines.
let loop = EmbeddedEventLoop()

/// One server for every input (building one per input was most of each run), its connection
/// pipeline installed on a fresh EmbeddedChannel per input.
let server: VigilServer = {
    let configuration = try! SettingsLoader.resolve(
        flags: [
            "max_frame": "4KiB", "max_message": "16KiB", "max_connections": "4", "close_history": "64",
            "ping_interval": "10ms", "pong_timeout": "10ms", "read_deadline": "50ms",
        ],
        environment: [:], file: nil)
    return VigilServer(
        configuration: configuration, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }),
        group: NIOSingletons.posixEventLoopGroup, clock: ConnectionClock { MonotonicInstant(loop.now) })
}()

/// Close records the registry published during the current input.
let records = NIOLockedValueBox(0)
let subscription = server.registry.subscribe { _ in records.withLockedValue { $0 += 1 } }

/// The first byte says where the rest is cut into two chunks; the rest is what a client sends
/// to vigild's listener: the HTTP handshake, route and header checks, refusals, and after an
/// upgrade the framing core and supervised handler, then 100 ms of the heartbeat's timers
/// before it hangs up. Checks: no crash, no connection left registered, and exactly one close
/// record for a connection that was upgraded (none for one that was refused).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnection(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count >= 1 else { return 0 }
    _ = subscription
    startOnATick(loop)
    let input = UnsafeBufferPointer(start: start, count: count)
    let stream = UnsafeBufferPointer(rebasing: input.dropFirst())
    let cut = Int(input[0]) % (stream.count + 1)
    records.withLockedValue { $0 = 0 }
    let channel = EmbeddedChannel(loop: loop)
    var output = ServerOutput()
    do {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        try server.installConnectionPipeline(on: channel)
        for (from, to) in [(0, cut), (cut, stream.count)] where from < to {
            guard channel.isActive else { break }
            _ = try? channel.writeInbound(ByteBuffer(bytes: UnsafeBufferPointer(rebasing: stream[from..<to])))
            loop.run()  // what the server's futures scheduled, as its loop would between reads
            output.drain(channel)
        }
        if channel.isActive {  // a refused connection is closed already: no timer of its own is left
            loop.advanceTime(by: .milliseconds(100))
            output.drain(channel)
            _ = try? channel.close().wait()
        }
    } catch {
        preconditionFailure("\(error)")
    }
    check(server.registry.activeCount == 0, "a closed connection is still registered")
    let recorded = records.withLockedValue { $0 }
    check(
        recorded == (output.upgraded ? 1 : 0),
        "\(recorded) close records for a connection that was \(output.upgraded ? "" : "not ")upgraded")
    return 0
}

/// What the server wrote to one connection, as far as the checks need it.
struct ServerOutput {
    private var first = true
    /// Whether the server's first bytes were a 101.
    private(set) var upgraded = false

    /// Takes what the server wrote: raw refusals come as ByteBuffers, NIO's HTTP encoder's
    /// output as IOData.
    mutating func drain(_ channel: EmbeddedChannel) {
        while let written = (try? channel.readOutbound(as: Any.self)) ?? nil {
            guard first else { continue }
            first = false
            let bytes: ByteBuffer? =
                switch written {
                case let buffer as ByteBuffer: buffer
                case .byteBuffer(let buffer) as IOData: buffer
                default: nil
                }
            upgraded = bytes?.readableBytesView.starts(with: "HTTP/1.1 101 ".utf8) ?? false
        }
    }
}
