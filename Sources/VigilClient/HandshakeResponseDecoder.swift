import NIOCore
import NIOHTTP1
import NIOWebSocket
import VigilFraming

/// Reads the server's handshake response and hands every byte after it to the framing core.
///
/// NIO's client upgrade path drops bytes that arrive behind the 101 when the server's FIN
/// lands in the same read (its HTTP decoder forwards leftovers only without EOF, and the upgrade
/// completes a tick later). A server may well send a ping and a close right behind its 101 and
/// hang up, so this decoder installs the framing handlers synchronously, in the same read that
/// completed the response head, and forwards the rest of the stream itself, EOF or not.
/// NIO's client upgrader still produces the request key and checks `Sec-WebSocket-Accept`.
final class HandshakeResponseDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// The longest response head accepted.
    static let maxHeadBytes = 16 * 1024

    private enum State {
        case awaitingResponse
        case upgraded
        case failed
    }

    private var state = State.awaitingResponse
    private let keyChecker: NIOWebSocketClientUpgrader
    private let installFraming: (ChannelHandlerContext) throws -> Void
    private let fail: (any Error) -> Void

    init(
        keyChecker: NIOWebSocketClientUpgrader, installFraming: @escaping (ChannelHandlerContext) throws -> Void,
        fail: @escaping (any Error) -> Void
    ) {
        self.keyChecker = keyChecker
        self.installFraming = installFraming
        self.fail = fail
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
        case .awaitingResponse:
            guard let headLength = Self.headLength(buffer) else {
                if buffer.readableBytes > Self.maxHeadBytes {
                    refuse(WebSocketClientError.upgradeRefused, context: context)
                }
                return .needMoreData
            }
            let text = buffer.readString(length: headLength) ?? ""
            guard let head = Self.parseHead(text), head.status == .switchingProtocols,
                keyChecker.shouldAllowUpgrade(upgradeResponse: head)
            else {
                refuse(WebSocketClientError.upgradeRefused, context: context)
                return .needMoreData
            }
            state = .upgraded
            do {
                try installFraming(context)
            } catch {
                refuse(error, context: context)
                return .needMoreData
            }
            return .continue
        }
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if state == .awaitingResponse {
            refuse(WebSocketClientError.closedDuringHandshake, context: context)
        }
        return .needMoreData
    }

    private func refuse(_ error: any Error, context: ChannelHandlerContext) {
        state = .failed
        fail(error)
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
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else { return nil }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.add(name: String(line[..<colon]), value: String(value.reversed().drop { $0 == " " || $0 == "\t" }.reversed()))
        }
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code), headers: headers)
    }
}

@available(*, unavailable)
extension HandshakeResponseDecoder: Sendable {}
