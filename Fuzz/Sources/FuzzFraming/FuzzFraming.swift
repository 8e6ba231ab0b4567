import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOWebSocket
import VigilConnection
import VigilFraming
import VigilSupervisor

/// Sink and observer of the connection under test: echoes every message (so outbound frames
/// are exercised), checks what the framing core delivers and counts records.
final class Checker: MessageSink, ConnectionObserver {
    var records = 0

    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        if message.kind == .text {
            check(String(validating: message.data.readableBytesView, as: UTF8.self) != nil, "invalid UTF-8 delivered")
        }
        connection.send(message)
    }

    func closeFrameReceived(_ payload: ClosePayload) {
        if let code = payload.code { check(CloseCode.isValidOnWire(code), "close code \(code) passed validation") }
    }

    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {
        records += 1
        check(records == 1, "more than one close record")
    }
}

/// The first byte picks the role (bit 0: client, facing a server's unmasked frames), whether
/// permessage-deflate was agreed (bit 1; bit 2: with the remote end keeping its context, so the
/// connection inflates with a stream of its own) and where the rest is cut into three chunks
/// (bits 3-7, partial frames); the rest is the remote end's byte stream, through NIO's decoder
/// (wrapped by the stream decoder) into the real supervised shell: message assembly, inflating
/// and deflating, the violation mapping, the supervisor, the timer wheel. Checks: no
/// crash, text delivered is UTF-8, close codes were validated, nothing sent carries a status
/// that must never be on the wire, masking follows the role, and an ended connection has
/// exactly one record.
/// One event loop, timer wheel and peer address for every input: building them per input was a
/// tenth of each run (the wheel's 1,024 slots alone are 1,024 retains and releases). The loop's
/// clock runs on from input to input; a timer an earlier connection left in the wheel finds its
/// target gone (the wheel holds targets weakly) and is dropped when its slot comes round.
let loop = EmbeddedEventLoop()
let clock = ConnectionClock { MonotonicInstant(loop.now) }
// libFuzzer runs every input on one thread, the loop's, which is the wheel's confinement.
nonisolated(unsafe) let wheel = TimerWheel(eventLoop: loop, clock: clock)
let peer = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)
let limits = FramingLimits(maxFrameSize: 4096, maxMessageSize: 16384)
let deflateStreams = DeflateStreams()
/// Small enough that the seeds' messages are deflated on the way back.
let deflateOptions = DeflateOptions(level: 1, minimumSize: 16)
let policy = SupervisionPolicy(
    pingInterval: .milliseconds(10), pongTimeout: .milliseconds(10), readDeadline: .milliseconds(50),
    closeTimeout: .milliseconds(20), writeTimeout: .milliseconds(30))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFraming(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count >= 1 else { return 0 }
    startOnATick(loop)
    let input = UnsafeBufferPointer(start: start, count: count)
    let role: WebSocketRole = input[0] & 1 == 0 ? .server : .client
    let bytes = UnsafeBufferPointer(rebasing: input.dropFirst())
    let channel = EmbeddedChannel(loop: loop)
    let checker = Checker()
    var compression = MessageCompression.off
    if input[0] & 2 != 0 {
        // Both windows 8 bits, the smallest: this end deflates with 9 and inflates with 8.
        let remoteKeepsContext = input[0] & 4 != 0
        let agreement = PerMessageDeflate.Agreement(
            serverNoContextTakeover: role == .server || !remoteKeepsContext,
            clientNoContextTakeover: role == .client || !remoteKeepsContext,
            serverMaxWindowBits: 8, clientMaxWindowBits: 8)
        compression = .endpoint(
            MessageDeflate(
                agreement: agreement, role: role, options: deflateOptions, streams: deflateStreams, eventLoop: loop))
    }
    let handler = SupervisedConnectionHandler(
        configuration: .init(role: role, policy: policy, limits: limits),
        sink: checker, observer: checker, wheel: wheel, clock: clock, openedAt: clock.now(), compression: compression)
    do {
        try channel.connect(to: peer).wait()
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: limits.maxFrameSize)))
        try channel.pipeline.syncOperations.addHandler(handler)
        let cut = Int(input[0] >> 3)
        let cuts = [cut % (bytes.count + 1), (cut * 7) % (bytes.count + 1)].sorted()
        for (from, to) in [(0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], bytes.count)] where from < to {
            guard channel.isActive else { break }
            _ = try? channel.writeInbound(ByteBuffer(bytes: UnsafeBufferPointer(rebasing: bytes[from..<to])))
            loop.advanceTime(by: .milliseconds(4))
            checkWritten(channel, role: role)
        }
        if channel.isActive { channel.pipeline.fireUserInboundEventTriggered(WebSocketInputEnded(midFrame: false)) }
        loop.advanceTime(by: .milliseconds(100))
        checkWritten(channel, role: role)
        if channel.isActive { channel.pipeline.fireChannelInactive() }
        check(checker.records == 1, "a connection that ended has exactly one record")
    } catch {
        preconditionFailure("pipeline setup failed: \(error)")
    }
    _ = try? channel.finish()
    return 0
}

/// What the shell wrote: masked exactly when it is the client, and no close status RFC 6455
/// reserves for "never on the wire".
private func checkWritten(_ channel: EmbeddedChannel, role: WebSocketRole) {
    for frame in writtenFrames(channel) {
        check((frame.maskKey != nil) == (role == .client), "masking does not follow the role")
        if frame.opcode == .connectionClose,
            let code = frame.data.getInteger(at: frame.data.readerIndex, as: UInt16.self)
        {
            check(CloseCode.isValidOnWire(code), "sent close code \(code)")
        }
    }
}
