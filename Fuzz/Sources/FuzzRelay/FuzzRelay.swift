import FuzzSupport
import Glibc
import NIOCore
import NIOEmbedded
import NIOWebSocket
import VigilConnection
import VigilFraming
import VigilProxy
import VigilSupervisor

/// The client leg's limits, and the upstream leg's as proxy mode sets them: the upstream may
/// send a message as one frame up to `max_message`, which the relay re-frames for the client.
let clientLimits = FramingLimits(maxFrameSize: 4096, maxMessageSize: 16384)
let upstreamLimits = FramingLimits(maxFrameSize: 16384, maxMessageSize: 16384)
let policy = SupervisionPolicy(
    pingInterval: .milliseconds(10), pongTimeout: .milliseconds(10), readDeadline: .milliseconds(50),
    closeTimeout: .milliseconds(20), writeTimeout: .milliseconds(30))

/// The client leg runs the application heartbeat, as proxy mode's `app_ping_interval` has it, so
/// that its pong is looked for among compressed messages too: its app ping goes at 10 ms, before
/// its first protocol ping (20 ms), which nothing answers, ends it 10 ms later.
let clientPolicy: SupervisionPolicy = {
    var policy = policy
    policy.pingInterval = .milliseconds(20)
    policy.appHeartbeat = AppHeartbeat(
        interval: .milliseconds(10), timeout: .milliseconds(40), ping: "ping", pong: "pong")
    return policy
}()

/// permessage-deflate agreed on both legs, as proxy mode passes it through: compressed messages
/// are relayed as they came; the client leg inflates small ones only to find its pong (its
/// agreement says `client_no_context_takeover`, as proxy mode answers with the app heartbeat on).
let deflateStreams = DeflateStreams()
let passThrough = PerMessageDeflate.Agreement(clientNoContextTakeover: true)

/// One event loop, timer wheel and peer address for every input, as in FuzzFraming: the loop's
/// clock runs on from input to input, and a timer an earlier pair left in the wheel finds its
/// target gone (the wheel holds targets weakly).
let loop = EmbeddedEventLoop()
let clock = ConnectionClock { MonotonicInstant(loop.now) }
// libFuzzer runs every input on one thread, the loop's, which is the wheel's confinement.
nonisolated(unsafe) let wheel = TimerWheel(eventLoop: loop, clock: clock)
let peer = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)

/// One leg of the pair under test: its channel, and the books its observer keeps.
final class Leg: ConnectionObserver {
    let name: String
    let role: WebSocketRole
    let limits: FramingLimits
    let channel: EmbeddedChannel
    var records = 0
    /// This leg has sent its close frame: nothing may follow it.
    var sentClose = false
    /// The text message being sent in fragments, to check it is UTF-8 once whole.
    var outgoingText: [UInt8]?

    init(name: String, role: WebSocketRole, limits: FramingLimits, loop: EmbeddedEventLoop) {
        self.name = name
        self.role = role
        self.limits = limits
        self.channel = EmbeddedChannel(loop: loop)
    }

    func connectionClosed(_ outcome: CloseOutcome, at now: MonotonicInstant) {
        records += 1
        check(records == 1, "\(name) leg: more than one close record")
    }

    /// Checks what the relay and the shell wrote on this leg: masked exactly when the leg is the
    /// client, control frames whole, uncompressed and within 125 bytes, data frames within the
    /// leg's `max_frame`, RSV1 only on a message's first frame, text messages UTF-8 unless
    /// relayed compressed (the endpoints' business), no close status that must never be on the
    /// wire, and nothing after the close frame.
    func checkWritten() {
        for frame in writtenFrames(channel) {
            check(!sentClose, "\(name) leg: a \(frame.opcode) frame after its close frame")
            check((frame.maskKey != nil) == (role == .client), "\(name) leg: masking does not follow the role")
            let payload = frame.data  // unmasked: read back from the bytes (`writtenFrames`)
            check(!frame.rsv2 && !frame.rsv3, "\(name) leg: RSV2 or RSV3 set")
            check(
                !frame.rsv1 || frame.opcode == .text || frame.opcode == .binary,
                "\(name) leg: RSV1 on a \(frame.opcode) frame")
            switch frame.opcode {
            case .connectionClose, .ping, .pong:
                check(
                    frame.fin && payload.readableBytes <= 125,
                    "\(name) leg: a control frame fragmented or over 125 bytes")
                if frame.opcode == .connectionClose {
                    sentClose = true
                    if let code = payload.getInteger(at: payload.readerIndex, as: UInt16.self) {
                        check(CloseCode.isValidOnWire(code), "\(name) leg: sent close code \(code)")
                    }
                }
            case .text, .binary, .continuation:
                check(payload.readableBytes <= limits.maxFrameSize, "\(name) leg: a data frame over max_frame")
                if frame.opcode == .text { outgoingText = frame.rsv1 ? nil : [] }
                if frame.opcode == .binary { outgoingText = nil }
                if outgoingText != nil { outgoingText! += payload.readableBytesView }
                if frame.fin, let text = outgoingText {
                    check(String(validating: text, as: UTF8.self) != nil, "\(name) leg: invalid UTF-8 relayed")
                    outgoingText = nil
                }
            default:
                check(false, "\(name) leg: sent opcode \(frame.opcode)")
            }
        }
    }
}

/// Both legs of one proxied pair on one event loop, joined by the real relay (`RelaySink`): the
/// client leg in the server role, the upstream leg in the client role, as proxy mode has them.
///
/// The input is a script: each step's first byte says what happens (low two bits) —
/// 0 and 1: the next two bytes give a length, and that many bytes arrive on the client (0) or
/// upstream (1) leg; 2: time passes (the byte's upper bits, in milliseconds); 3: a leg's input
/// ends, cleanly or mid-frame, or its transport fails. Then both inputs end and 200 ms pass.
/// Checks, beyond no crash: each leg ends with exactly one record, and nothing invalid is put on
/// either wire (see `Leg.checkWritten`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRelay(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count >= 1 else { return 0 }
    startOnATick(loop)
    var script = UnsafeBufferPointer(start: start, count: count)[...]
    let client = Leg(name: "client", role: .server, limits: clientLimits, loop: loop)
    let upstream = Leg(name: "upstream", role: .client, limits: upstreamLimits, loop: loop)
    let sinks = RelaySink.pair(upstreamFailureCode: 1014)
    do {
        // The upstream leg first: proxy mode dials it before it answers the client.
        for (leg, sink) in [(upstream, sinks.upstream), (client, sinks.client)] as [(Leg, RelaySink)] {
            var configuration = SupervisedConnectionHandler.Configuration(
                role: leg.role, policy: leg.role == .server ? clientPolicy : policy, limits: leg.limits)
            configuration.answersPings = false  // a relay passes pings on
            let pongReader =
                leg.role == .server
                ? MessageDeflate(
                    agreement: passThrough, role: .server, options: DeflateOptions(), streams: deflateStreams,
                    eventLoop: loop) : nil
            let handler = SupervisedConnectionHandler(
                configuration: configuration, sink: sink, observer: leg, wheel: wheel, clock: clock,
                openedAt: clock.now(), compression: .relayed(pongReader: pongReader))
            try leg.channel.connect(to: peer).wait()
            let pipeline = leg.channel.pipeline.syncOperations
            try pipeline.addHandler(
                ByteToMessageHandler(WebSocketFrameStreamDecoder(maxFrameSize: leg.limits.maxFrameSize)))
            try pipeline.addHandler(handler)
        }
    } catch {
        fatalError("pipeline setup failed: \(error)")
    }
    while let step = script.popFirst() {
        switch step & 3 {
        case 0, 1:
            let leg = step & 3 == 0 ? client : upstream
            let high = Int(script.popFirst() ?? 0)
            let length = min(high << 8 | Int(script.popFirst() ?? 0), script.count)
            let bytes = ByteBuffer(bytes: script.prefix(length))
            script = script.dropFirst(length)
            if leg.channel.isActive { _ = try? leg.channel.writeInbound(bytes) }
        case 2:
            loop.advanceTime(by: .milliseconds(Int64(step >> 2)))
        default:
            let leg = step & 4 == 0 ? client : upstream
            guard leg.channel.isActive else { break }
            if step & 8 == 0 {
                leg.channel.pipeline.fireUserInboundEventTriggered(WebSocketInputEnded(midFrame: step & 16 != 0))
            } else {
                leg.channel.pipeline.fireErrorCaught(
                    IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)"))
            }
        }
        client.checkWritten()
        upstream.checkWritten()
    }
    for leg in [client, upstream] where leg.channel.isActive {
        leg.channel.pipeline.fireUserInboundEventTriggered(WebSocketInputEnded(midFrame: false))
    }
    loop.advanceTime(by: .milliseconds(200))
    for leg in [client, upstream] {
        leg.checkWritten()
        if leg.channel.isActive { leg.channel.pipeline.fireChannelInactive() }
        check(leg.records == 1, "\(leg.name) leg ended with \(leg.records) close records")
        _ = try? leg.channel.finish()
    }
    return 0
}
