import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Testing
import VigilClient
import VigilSupervisor

/// The client side of the framing core against a raw server that writes whatever bytes a test
/// wants right behind its 101 (no well-behaved server library would send some of these).
@Suite("Client side of the framing core", .timeLimit(.minutes(1)))
struct ClientFramingTests {
    /// Answers the first request with `response`, in one write, then closes.
    final class RawResponder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let response: [UInt8]
        var request: [UInt8] = []

        init(response: [UInt8]) { self.response = response }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            request += Array(unwrapInboundIn(data).readableBytesView)
            guard request.suffix(4) == Array("\r\n\r\n".utf8) else { return }
            let key = String(decoding: request, as: UTF8.self).split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("sec-websocket-key:") }!
                .dropFirst("sec-websocket-key:".count).trimmingCharacters(in: .whitespaces)
            let head =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(try! acceptValue(for: key, channel: context.channel))\r\n\r\n"
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: Array(head.utf8) + response)))
                .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    static func serve(_ response: [UInt8]) async throws -> any Channel {
        try await ServerBootstrap(group: TestServer.clientGroup)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawResponder(response: response))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    @Test("frames and FIN arriving in the same burst as the 101 are all reported, in order")
    func framesBehind101() async throws {
        let ping: [UInt8] = [0x89, 0x02, 7, 7]
        let text: [UInt8] = [0x81, 0x02] + Array("hi".utf8)
        let close: [UInt8] = [0x88, 0x04, 0x03, 0xF0] + Array("by".utf8)
        let server = try await Self.serve(ping + text + close)
        for _ in 0..<20 {
            let client = try await WebSocketClient.connect(
                host: "127.0.0.1", port: server.localAddress!.port!, group: TestServer.clientGroup)
            let events = await client.remainingEvents()
            #expect(
                Array(events.prefix(3)) == [.ping([7, 7]), .text("hi"), .close(code: 1008, reason: "by")], "\(events)")
        }
        try await server.close()
    }

    /// Answers the first request with a 101 and `behind` in one write, then passes on the first
    /// `expecting` bytes the client sends after its request.
    final class ReplyWatcher: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let behind: [UInt8]
        let expecting: Int
        let replied: EventLoopPromise<[UInt8]>
        var request: [UInt8] = []
        var reply: [UInt8]?

        init(behind: [UInt8], expecting: Int, replied: EventLoopPromise<[UInt8]>) {
            (self.behind, self.expecting, self.replied) = (behind, expecting, replied)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            if var reply {
                reply += bytes
                self.reply = reply
                if reply.count >= expecting { replied.succeed(Array(reply.prefix(expecting))) }
                return
            }
            request += bytes
            guard let end = request.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else { return }
            reply = Array(request[end...])
            let key = String(decoding: request[..<end], as: UTF8.self).split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("sec-websocket-key:") }!
                .dropFirst("sec-websocket-key:".count).trimmingCharacters(in: .whitespaces)
            let head =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(try! acceptValue(for: key, channel: context.channel))\r\n\r\n"
            context.writeAndFlush(
                NIOAny(context.channel.allocator.buffer(bytes: Array(head.utf8) + behind)), promise: nil)
        }
    }

    @Test("what a frame behind the 101 makes the client write goes out in that same read (a pong)")
    func answerToFrameBehind101() async throws {
        let replied = TestServer.clientGroup.next().makePromise(of: [UInt8].self)
        let server = try await ServerBootstrap(group: TestServer.clientGroup)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ReplyWatcher(behind: [0x89, 0x02, 7, 9], expecting: 8, replied: replied))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await WebSocketClient.connect(
            host: "127.0.0.1", port: server.localAddress!.port!, group: TestServer.clientGroup)
        struct NoPong: Error {}
        let giveUp = TestServer.clientGroup.next().scheduleTask(in: .seconds(10)) { replied.fail(NoPong()) }
        defer { giveUp.cancel() }
        // The client's pong: FIN + opcode 0xA, masked, 2 bytes, its key, the payload masked by it.
        let pong = try await replied.futureResult.get()
        #expect(pong[0] == 0x8A && pong[1] == 0x82, "\(pong)")
        #expect([pong[6] ^ pong[2], pong[7] ^ pong[3]] == [7, 9], "\(pong)")
        await client.closeTransport()
        try await server.close()
    }

    @Test("a masked frame from the server is a protocol violation on the client side")
    func maskedServerFrame() async throws {
        let server = try await Self.serve([0x81, 0x82, 1, 2, 3, 4, 0x69 ^ 1, 0x69 ^ 2])
        let client = try await WebSocketClient.connect(
            host: "127.0.0.1", port: server.localAddress!.port!, group: TestServer.clientGroup)
        let events = await client.remainingEvents()
        #expect(
            events == [
                .violation(.init(.protocolError, "masked server frame")),
                .ended(
                    CloseOutcome(
                        kind: .error, code: 1002, cause: .protocolError, initiator: .local, clean: false,
                        reason: "masked server frame")),
            ])
        try await server.close()
    }

    @Test("a server that stops mid-frame is reported as a truncated stream")
    func truncatedServerFrame() async throws {
        let server = try await Self.serve([0x82, 0x7E, 0x01, 0x00, 1, 2, 3])
        let client = try await WebSocketClient.connect(
            host: "127.0.0.1", port: server.localAddress!.port!, group: TestServer.clientGroup)
        #expect(
            await client.remainingEvents() == [
                .ended(
                    CloseOutcome(
                        kind: .abnormal, code: 1006, cause: .truncatedFrame, initiator: .remote, clean: false,
                        reason: ""))
            ])
        try await server.close()
    }
}

/// `Sec-WebSocket-Accept` for a key, computed by NIO's own server upgrader.
func acceptValue(for key: String, channel: any Channel) throws -> String {
    let upgrader = NIOWebSocketServerUpgrader(
        shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
        upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() })
    var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
    head.headers.add(name: "Sec-WebSocket-Key", value: key)
    head.headers.add(name: "Sec-WebSocket-Version", value: "13")
    // Called on the event loop, where the (already completed) future must not be waited on.
    var accept: String?
    upgrader.buildUpgradeResponse(channel: channel, upgradeRequest: head, initialResponseHeaders: [:])
        .assumeIsolated().whenSuccess { accept = $0["Sec-WebSocket-Accept"].first }
    return try #require(accept)
}
