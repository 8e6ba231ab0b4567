import NIOCore
import NIOHTTP1
import NIOWebSocket
import VigilFraming
import VigilText

/// Reads the server's handshake response and hands every byte after it to the framing core.
///
/// NIO's client upgrade path drops bytes that arrive behind the 101 when the server's FIN
/// lands in the same read (its HTTP decoder forwards leftovers only without EOF, and the upgrade
/// completes a tick later). A server may well send a ping and a close right behind its 101 and
/// hang up, so this decoder installs the framing handlers synchronously, in the same read that
/// completed the response head, and forwards the rest of the stream itself, EOF or not.
/// NIO's client upgrader still produces the request key and checks `Sec-WebSocket-Accept`.
///
/// A refusal (any status but 101) is read with up to `HTTPRefusal.maxBody` bytes of its body,
/// by its length, chunked, or to the end of the connection, so a proxy can pass it on.
final class HandshakeResponseDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// The longest response head accepted.
    static let maxHeadBytes = 16 * 1024

    private enum State {
        case awaitingResponse
        /// A refusal's head is in; its body is being read (`remaining` when the length is known).
        case readingRefusal(HTTPRefusal, remaining: Int?)
        /// A refusal's head is in; its chunked body is being read.
        case readingChunkedRefusal(HTTPRefusal, ChunkedBodyReader)
        case upgraded
        case failed
    }

    private var state = State.awaitingResponse
    private let keyChecker: NIOWebSocketClientUpgrader
    private let offeredProtocols: [String]
    private let installFraming: (ChannelHandlerContext, HTTPResponseHead) throws -> Void
    private let fail: (DialFailure) -> Void
    /// Told the refusal read so far (head, and the body as it grows), so a dial deadline that
    /// fires while a slow body is still arriving passes on the refusal, not a timeout.
    private let refusalSoFar: (HTTPRefusal) -> Void

    init(
        keyChecker: NIOWebSocketClientUpgrader, offeredProtocols: [String],
        installFraming: @escaping (ChannelHandlerContext, HTTPResponseHead) throws -> Void,
        fail: @escaping (DialFailure) -> Void,
        refusalSoFar: @escaping (HTTPRefusal) -> Void = { _ in }
    ) {
        self.keyChecker = keyChecker
        self.offeredProtocols = offeredProtocols
        self.installFraming = installFraming
        self.fail = fail
        self.refusalSoFar = refusalSoFar
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch state {
        case .upgraded:
            guard let rest = buffer.readSlice(length: buffer.readableBytes), rest.readableBytes > 0 else {
                return .needMoreData
            }
            context.fireChannelRead(wrapInboundOut(rest))
            return .needMoreData
        case .failed:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        case .readingRefusal(var refusal, let remaining):
            let room = HTTPRefusal.maxBody - refusal.body.count
            let take = min(buffer.readableBytes, room, remaining ?? Int.max)
            refusal.body += buffer.readBytes(length: take) ?? []
            buffer.moveReaderIndex(to: buffer.writerIndex)
            let left = remaining.map { $0 - take }
            if left == 0 || refusal.body.count >= HTTPRefusal.maxBody {
                finish(.refused(refusal), context: context)
            } else {
                state = .readingRefusal(refusal, remaining: left)
                refusalSoFar(refusal)
            }
            return .needMoreData
        case .readingChunkedRefusal(var refusal, var reader):
            let progress = reader.read(&buffer, into: &refusal.body, limit: HTTPRefusal.maxBody)
            switch progress {
            case .needMore:
                state = .readingChunkedRefusal(refusal, reader)
                refusalSoFar(refusal)
            case .complete, .malformed:
                // A malformed chunk ends the body there; the refusal itself is what matters.
                buffer.moveReaderIndex(to: buffer.writerIndex)
                finish(.refused(refusal), context: context)
            }
            return .needMoreData
        case .awaitingResponse:
            guard let headLength = Self.headLength(buffer) else {
                if buffer.readableBytes > Self.maxHeadBytes {
                    finish(
                        .badHandshake(reason: "response head longer than \(Self.maxHeadBytes) bytes"), context: context)
                }
                return .needMoreData
            }
            let text = buffer.readString(length: headLength) ?? ""
            guard let head = Self.parseHead(text) else {
                finish(.badHandshake(reason: "not an HTTP response: \"\(Printable.escaped(text))\""), context: context)
                return .needMoreData
            }
            guard head.status == .switchingProtocols else {
                let refusal = HTTPRefusal(
                    status: Int(head.status.code), reason: head.status.reasonPhrase,
                    headers: head.headers.map { HTTPHeaderField(name: $0.name, value: $0.value) }, body: [])
                // RFC 9112 §6.3: Transfer-Encoding wins over Content-Length; chunked when it is
                // the last coding, else the body runs to the end of the connection.
                let codings = head.headers[canonicalForm: "transfer-encoding"]
                let length = head.headers.first(name: "content-length").flatMap { Int($0) }.flatMap {
                    $0 >= 0 ? $0 : nil
                }
                refusalSoFar(refusal)
                if let last = codings.last {
                    state =
                        last.lowercased() == "chunked"
                        ? .readingChunkedRefusal(refusal, ChunkedBodyReader())
                        : .readingRefusal(refusal, remaining: nil)
                    return .continue
                }
                if length == 0 {
                    finish(.refused(refusal), context: context)
                    return .needMoreData
                }
                state = .readingRefusal(refusal, remaining: length)
                return .continue
            }
            if let problem = check(head) {
                finish(.badHandshake(reason: problem), context: context)
                return .needMoreData
            }
            state = .upgraded
            do {
                try installFraming(context, head)
            } catch let failure as DialFailure {
                finish(failure, context: context)
                return .needMoreData
            } catch {
                finish(.badHandshake(reason: "cannot set up the connection: \(error)"), context: context)
                return .needMoreData
            }
            return .continue
        }
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        switch state {
        case .awaitingResponse:
            finish(.closedDuringHandshake, context: context)
        case .readingRefusal(let refusal, _), .readingChunkedRefusal(let refusal, _):
            finish(.refused(refusal), context: context)  // the body ended with the connection
        case .upgraded, .failed:
            break
        }
        return .needMoreData
    }

    /// What is wrong with a 101, if anything (RFC 6455 §4.1: the client fails the connection).
    private func check(_ head: HTTPResponseHead) -> String? {
        guard keyChecker.shouldAllowUpgrade(upgradeResponse: head) else {
            return "Sec-WebSocket-Accept does not match the key sent"
        }
        if let chosen = head.headers.first(name: "sec-websocket-protocol"), !offeredProtocols.contains(chosen) {
            return "the server chose the subprotocol \"\(Printable.escaped(chosen))\", which was not offered"
        }
        return nil  // extensions: the dialer checks them against what it offered (`WebSocketDialer.settle`)
    }

    private func finish(_ failure: DialFailure, context: ChannelHandlerContext) {
        state = .failed
        fail(failure)
        context.close(promise: nil)
    }

    /// Bytes up to and including the blank line that ends the head, if it has arrived.
    static func headLength(_ buffer: ByteBuffer) -> Int? {
        let bytes = buffer.readableBytesView
        var index = bytes.startIndex
        while index + 3 < bytes.endIndex {
            if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                return index + 4 - bytes.startIndex
            }
            index += 1
        }
        return nil
    }

    /// The status and headers of a response head (`HTTP/1.1 101 …` and `Name: value` lines).
    static func parseHead(_ text: String) -> HTTPResponseHead? {
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true)[...]
        guard let statusLine = lines.popFirst() else { return nil }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]), (100...999).contains(code)
        else {
            return nil
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.add(
                name: String(line[..<colon]),
                value: String(value.reversed().drop { $0 == " " || $0 == "\t" }.reversed()))
        }
        let reason = parts.count == 3 ? String(parts[2]) : ""
        return HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: code, reasonPhrase: reason), headers: headers)
    }

}

@available(*, unavailable)
extension HandshakeResponseDecoder: Sendable {}
