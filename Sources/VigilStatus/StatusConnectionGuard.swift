import NIOCore
import NIOHTTP1
import Synchronization
import VigilHost

/// How many status API connections are open, against `status_max_connections`. Shared by
/// every status listener (TCP and Unix socket).
final class StatusConnectionLimit: Sendable {
    let maximum: Int
    private let open = Atomic<Int>(0)

    init(maximum: Int) {
        self.maximum = maximum
    }

    func acquire() -> Bool {
        while true {
            let current = open.load(ordering: .relaxed)
            guard current < maximum else { return false }
            if open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged {
                return true
            }
        }
    }

    func release() {
        open.subtract(1, ordering: .relaxed)
    }
}

/// First in a status API connection's pipeline (it sees the raw bytes), it keeps one client
/// from holding vigild's resources:
/// - beyond `status_max_connections` the connection gets 503 at once and is closed;
/// - a request head must be complete within `status_request_timeout` of its first byte (a
///   fresh connection: of opening), else 408 and close (slowloris);
/// - a keep-alive connection idle between requests for `status_idle_timeout` is closed;
/// - while the connection's unwritten output is over its high-water mark nothing more is read,
///   so a client that pipelines requests and never reads the answers makes vigild buffer one
///   response, not thousands. (`StatusHTTPHandler` also holds back a response it would write
///   while unwritable: NIO's pipelining handler may have requests buffered from an earlier read.)
///
/// `StatusHTTPHandler` tells it where each request is (`requestHeadReceived`, `responseCompleted`).
final class StatusConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// How long a refused client has to read its 503 and hang up before vigild closes.
    static let refusalLinger = TimeAmount.seconds(1)

    private enum Phase {
        /// Between requests (or before the first): nothing of the next request has arrived.
        case awaitingRequest(first: Bool)
        /// Bytes of a request head have arrived; the head must complete in time.
        case readingHead
        /// A request is being answered.
        case handling
        /// Refused (over the connection limit) or timed out: input is discarded.
        case closing
    }

    private let limit: StatusConnectionLimit
    private let requestTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var phase = Phase.awaitingRequest(first: true)
    private var admitted = false
    private var timer: Scheduled<Void>?
    /// Bytes arrived while a request was being answered (the start of a pipelined request).
    private var bytesWhileHandling = false
    private var readPending = false
    private weak var context: ChannelHandlerContext?

    init(limit: StatusConnectionLimit, requestTimeout: Duration, idleTimeout: Duration) {
        self.limit = limit
        self.requestTimeout = .nanoseconds(requestTimeout.inNanoseconds)
        self.idleTimeout = .nanoseconds(idleTimeout.inNanoseconds)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { admit(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if admitted {
            admitted = false
            limit.release()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if admitted {
            admitted = false
            limit.release()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .closing:
            return  // a refused or timed-out client's bytes go nowhere
        case .awaitingRequest(let first):
            phase = .readingHead
            // A fresh connection's clock started when it opened.
            if !first { arm(requestTimeout, context: context) }
        case .readingHead:
            break
        case .handling:
            bytesWhileHandling = true
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readPending {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: - Told by StatusHTTPHandler

    func requestHeadReceived() {
        guard case .closing = phase else {
            phase = .handling
            timer?.cancel()
            timer = nil
            return
        }
    }

    func responseCompleted() {
        guard let context, case .handling = phase else { return }
        if bytesWhileHandling {
            bytesWhileHandling = false
            phase = .readingHead
            arm(requestTimeout, context: context)
        } else {
            phase = .awaitingRequest(first: false)
            arm(idleTimeout, context: context)
        }
    }

    // MARK: - Private

    private func admit(context: ChannelHandlerContext) {
        guard !admitted, case .awaitingRequest(first: true) = phase, timer == nil else { return }
        guard limit.acquire() else {
            phase = .closing
            _ = refusal(
                .serviceUnavailable,
                "too many status API connections (status_max_connections \(limit.maximum)); try again later",
                headers: [("Retry-After", "1")]
            ).write(from: context)
            // The client reads the answer and hangs up; one that does not is closed soon after.
            context.close(mode: .output, promise: nil)
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.refusalLinger) {
                context.close(promise: nil)
            }
            return
        }
        admitted = true
        arm(requestTimeout, context: context)
    }

    private func arm(_ timeout: TimeAmount, context: ChannelHandlerContext) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            timer = nil
            expire(context: context)
        }
    }

    private func expire(context: ChannelHandlerContext) {
        switch phase {
        case .readingHead:
            phase = .closing
            let seconds = Double(requestTimeout.nanoseconds) / 1e9
            refusal(
                .requestTimeout,
                "the request head did not arrive within \(seconds.formatted) s (status_request_timeout)"
            )
            .send(closing: context)
        case .awaitingRequest:
            phase = .closing
            context.close(promise: nil)  // idle, or never sent anything: nothing to answer
        case .handling, .closing:
            break
        }
    }

    /// A JSON error answer, written from here: this handler is first in the pipeline.
    private func refusal(_ status: HTTPResponseStatus, _ message: String, headers: [(String, String)] = [])
        -> HTTPErrorResponse
    {
        let response = StatusResponse.error(status, message)
        return HTTPErrorResponse(
            status, body: response.body, contentType: response.contentType,
            headers: [("Cache-Control", "no-store")] + headers)
    }
}

extension Double {
    /// `5`, `0.5`: seconds as an operator wrote them.
    fileprivate var formatted: String {
        self == rounded() ? String(Int(self)) : String(self)
    }
}

@available(*, unavailable)
extension StatusConnectionGuard: Sendable {}
