import FoundationEssentials
import NIOCore
import NIOHTTP1
import Synchronization
import VigilRegistry

/// `GET /closes/stream`: every close record stored from now on that matches the filter, one
/// JSON object per line (NDJSON, chunked), until the client hangs up.
///
/// Records arrive on the closing connections' event loops and are handed to the status
/// listener's loop; what a reader has not taken waits in the channel's outbound buffer. A
/// reader that falls `maxBehind` records behind (its socket does not drain) is dropped with a
/// final line saying so, rather than making vigild hold an unbounded backlog for it: no more
/// records are queued, and the connection closes once the line is out (or after `dropLinger`).
final class CloseStream {
    static let maxBehind = 1000
    /// How long a dropped reader has to take what was already queued and the last line.
    static let dropLinger = TimeAmount.seconds(30)

    private let registry: ConnectionRegistry
    private var subscription: UInt64?
    /// Records handed over but not yet written out to the kernel.
    private let behind = Backlog()

    private final class Backlog: Sendable {
        let count = Atomic<Int>(0)
    }
    private var dropped = false

    init(registry: ConnectionRegistry) {
        self.registry = registry
    }

    /// Sends the response head and starts forwarding records.
    func start(filter: CloseFilter, version: HTTPVersion, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(version: version, status: .ok)
        head.headers.add(name: "Content-Type", value: "application/x-ndjson")
        head.headers.add(name: "Cache-Control", value: "no-store")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        let loop = context.eventLoop
        let channel = NIOLoopBound(context, eventLoop: loop)
        let stream = NIOLoopBound(self, eventLoop: loop)
        let behind = self.behind
        subscription = registry.subscribe { record in
            guard filter.matches(record) else { return }
            // Beyond this the reader is being dropped: nothing more is queued for it.
            if behind.count.wrappingAdd(1, ordering: .relaxed).newValue > Self.maxBehind + 1 { return }
            loop.execute { stream.value.forward(record, context: channel.value) }
        }
    }

    private func forward(_ record: CloseRecord, context: ChannelHandlerContext) {
        guard !dropped, context.channel.isActive else { return }
        if behind.count.load(ordering: .relaxed) > Self.maxBehind {
            dropped = true
            var line = context.channel.allocator.buffer(capacity: 200)
            line.writeString(
                #"{"error":"this reader fell \#(Self.maxBehind) records behind (it does not read fast enough) and was dropped; the records are in /closes"}"#
                    + "\n")
            // The last line goes out behind what the reader has not taken yet: close once it is
            // written, or after `dropLinger` if the reader takes nothing at all.
            let written = context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(line))))
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
            context.eventLoop.scheduleTask(in: Self.dropLinger) { channel.close(promise: nil) }
            stop()
            return
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line = context.channel.allocator.buffer(capacity: 600)
        line.writeBytes((try? encoder.encode(CloseJSON(record: record))) ?? Data("{}".utf8))
        line.writeString("\n")
        let behind = self.behind
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(line)))).whenComplete { _ in
            behind.count.subtract(1, ordering: .relaxed)
        }
    }

    func stop() {
        if let subscription { registry.unsubscribe(subscription) }
        subscription = nil
    }
}

@available(*, unavailable)
extension CloseStream: Sendable {}
