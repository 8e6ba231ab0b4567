import Logging
import NIOCore
import NIOEmbedded
import VigilConfig
import VigilServer

/// One server, its connection pipeline installed on a fresh EmbeddedChannel per input.
let server: VigilServer = {
    let configuration = try! SettingsLoader.resolve(
        flags: ["max_frame": "4KiB", "max_message": "16KiB", "max_connections": "4", "close_history": "64",
                "ping_interval": "10ms", "pong_timeout": "10ms", "read_deadline": "50ms"],
        environment: [:], file: nil)
    return VigilServer(
        configuration: configuration, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }),
        group: NIOSingletons.posixEventLoopGroup)
}()

/// One event loop for every run: the server keeps a timer wheel per loop.
let loop = EmbeddedEventLoop()

/// Feeds the input into a server connection (in two chunks, cut where the first byte says),
/// drains what the server writes, then hangs up. Checks: no crash, and afterwards no connection
/// is left open in the registry.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnection(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let channel = EmbeddedChannel(loop: loop)
    do {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        try server.installConnectionPipeline(on: channel)
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        for chunk in [bytes[..<cut], bytes[cut...]] where !chunk.isEmpty {
            guard channel.isActive else { break }
            _ = try? channel.writeInbound(ByteBuffer(bytes: chunk))
            while (try? channel.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
        }
        loop.advanceTime(by: .milliseconds(100))
        _ = try? channel.close().wait()
    } catch {
        preconditionFailure("\(error)")
    }
    precondition(server.registry.activeCount == 0, "a closed connection is still registered")
    return 0
}
