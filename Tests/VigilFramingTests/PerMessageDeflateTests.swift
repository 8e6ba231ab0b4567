import NIOCore
import NIOEmbedded
import Testing

@testable import VigilFraming

@Suite("permessage-deflate: negotiation (RFC 7692 §7.1) and the codec")
struct PerMessageDeflateTests {
    let defaults = PerMessageDeflate.Configuration()

    @Test(
        "offers as browsers and libraries send them are parsed; malformed ones are passed over",
        arguments: [
            ("permessage-deflate; client_max_window_bits", 1),  // Chromium
            ("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", 1),
            ("permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1),  // gorilla
            ("permessage-deflate; client_max_window_bits=\"10\"", 1),
            ("x-webkit-deflate-frame, permessage-deflate", 1),
            ("permessage-deflate; client_max_window_bits=15, permessage-deflate", 2),
            ("permessage-deflate; server_max_window_bits", 0),  // a value is required
            ("permessage-deflate; server_max_window_bits=16", 0),
            ("permessage-deflate; server_max_window_bits=7", 0),
            ("permessage-deflate; server_max_window_bits=09", 0),
            ("permessage-deflate; client_no_context_takeover=1", 0),
            ("permessage-deflate; mystery", 0),
            ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0),
            ("permessage-deflate; ;", 0),
            ("", 0),
        ])
    func offers(header: String, count: Int) {
        #expect(PerMessageDeflate.offers(in: [header]).count == count, "\(header)")
    }

    @Test("a server answers with no context takeover both ways, unasked, and within the client's window")
    func serverAnswers() throws {
        let chromium = try #require(
            PerMessageDeflate.accept(
                PerMessageDeflate.offers(in: ["permessage-deflate; client_max_window_bits"]), configuration: defaults))
        #expect(chromium.headerValue == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        let limited = try #require(
            PerMessageDeflate.accept(
                PerMessageDeflate.offers(in: ["permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"]
                ),
                configuration: defaults))
        #expect(limited.serverMaxWindowBits == 10 && limited.clientMaxWindowBits == 9)
        #expect(limited.directions(for: .server).outbound == .init(noContextTakeover: true, windowBits: 10))
        #expect(limited.directions(for: .server).inbound == .init(noContextTakeover: true, windowBits: 9))
        var keeping = defaults
        keeping.noContextTakeover = false
        keeping.requestPeerNoContextTakeover = false
        let kept = try #require(
            PerMessageDeflate.accept(PerMessageDeflate.offers(in: ["permessage-deflate"]), configuration: keeping))
        #expect(kept.headerValue == "permessage-deflate")
        #expect(
            PerMessageDeflate.accept(
                PerMessageDeflate.offers(in: ["permessage-deflate; mystery"]), configuration: defaults) == nil)
        #expect(PerMessageDeflate.accept([], configuration: defaults) == nil)
    }

    @Test(
        "a client refuses an answer it did not offer",
        arguments: [
            ("permessage-deflate; server_no_context_takeover; mystery", "mystery"),
            ("permessage-deflate; server_no_context_takeover; server_max_window_bits=16", "server_max_window_bits"),
            ("x-webkit-deflate-frame", "did not offer"),
            ("permessage-deflate, permessage-deflate", "did not offer"),
            ("permessage-deflate", "server_no_context_takeover"),
            ("permessage-deflate; server_no_context_takeover; client_max_window_bits", "client_max_window_bits"),
        ])
    func clientRefusals(answer: String, naming: String) {
        #expect {
            try PerMessageDeflate.agreement(inAnswer: [answer], configuration: defaults)
        } throws: { error in
            "\(error)".contains(naming)
        }
    }

    @Test("a client takes a valid answer, and no answer as no extension")
    func clientAccepts() throws {
        let answer = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
        let agreement = try #require(try PerMessageDeflate.agreement(inAnswer: [answer], configuration: defaults))
        #expect(agreement.clientNoContextTakeover, "vigil offered client_no_context_takeover: it keeps no context")
        #expect(agreement.directions(for: .client).outbound == .init(noContextTakeover: true, windowBits: 10))
        #expect(try PerMessageDeflate.agreement(inAnswer: [], configuration: defaults) == nil)
        #expect(
            PerMessageDeflate.offerHeader(configuration: defaults)
                == "permessage-deflate; client_max_window_bits; client_no_context_takeover; server_no_context_takeover")
    }

    // MARK: - The codec

    func codecs(_ agreement: PerMessageDeflate.Agreement, options: DeflateOptions = DeflateOptions(minimumSize: 0))
        -> (server: MessageDeflate, client: MessageDeflate, loop: EmbeddedEventLoop)
    {
        let loop = EmbeddedEventLoop()
        let streams = DeflateStreams()
        return (
            MessageDeflate(agreement: agreement, role: .server, options: options, streams: streams, eventLoop: loop),
            MessageDeflate(agreement: agreement, role: .client, options: options, streams: streams, eventLoop: loop),
            loop
        )
    }

    @Test(
        "what one end deflates the other inflates, with and without context takeover, every window",
        arguments: [
            PerMessageDeflate.Agreement(serverNoContextTakeover: true, clientNoContextTakeover: true),
            PerMessageDeflate.Agreement(),
            PerMessageDeflate.Agreement(serverMaxWindowBits: 8, clientMaxWindowBits: 8),
            PerMessageDeflate.Agreement(serverNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 12),
        ])
    func roundTrips(agreement: PerMessageDeflate.Agreement) throws {
        let (server, client, loop) = codecs(agreement)
        defer { try? loop.syncShutdownGracefully() }
        let allocator = ByteBufferAllocator()
        var random = SystemRandomNumberGenerator()
        for size in [0, 1, 100, 255, 300, 4096, 70_000] {
            // Compressible with matches at every distance up to the window.
            let text = (0..<size).map { index in UInt8(ascii: "a") + UInt8((index * 7 + index / 300) % 26) }
            for (from, to) in [(server, client), (client, server)] {
                let message = ByteBuffer(bytes: text)
                // A message too small to gain may go as it is (RSV1 clear is always allowed).
                guard let compressed = from.deflate(message, allocator: allocator) else {
                    #expect(size < 100, "size \(size) is compressible")
                    continue
                }
                let inflated = try to.inflate(compressed, limit: 1 << 20, allocator: allocator)
                #expect(Array(inflated.readableBytesView) == text, "size \(size)")
            }
            _ = random.next()
        }
    }

    @Test("an empty message compressed is one 0x00 byte (RFC 7692 §7.2.3.6); vigild sends it as it is")
    func emptyMessage() throws {
        let (server, client, loop) = codecs(PerMessageDeflate.Agreement(serverNoContextTakeover: true))
        defer { try? loop.syncShutdownGracefully() }
        #expect(
            server.deflate(ByteBuffer(), allocator: ByteBufferAllocator()) == nil, "compressing cannot make it smaller")
        #expect(
            try client.inflate(ByteBuffer(bytes: [0x00]), limit: 10, allocator: ByteBufferAllocator()).readableBytes
                == 0)
    }

    @Test("a small payload that inflates past the limit is refused with 1009 without inflating it all")
    func bomb() throws {
        let (server, client, loop) = codecs(PerMessageDeflate.Agreement(serverNoContextTakeover: true))
        defer { try? loop.syncShutdownGracefully() }
        let zeros = ByteBuffer(repeating: 0, count: 16 << 20)
        let compressed = try #require(server.deflate(zeros, allocator: ByteBufferAllocator()))
        #expect(compressed.readableBytes < 128 << 10, "16 MiB of zeros deflate to \(compressed.readableBytes) bytes")
        #expect {
            try client.inflate(compressed, limit: 1 << 20, allocator: ByteBufferAllocator())
        } throws: { error in
            (error as? FramingError)?.cause == .messageTooBig
        }
        // The shared stream is reset after a refusal: the next message inflates.
        let next = try #require(
            server.deflate(ByteBuffer(string: String(repeating: "ok ", count: 100)), allocator: ByteBufferAllocator()))
        #expect(
            String(buffer: try client.inflate(next, limit: 1 << 20, allocator: ByteBufferAllocator())).hasPrefix(
                "ok ok"))
    }

    @Test("data that is not deflate is a protocol error")
    func corrupt() throws {
        let (_, client, loop) = codecs(PerMessageDeflate.Agreement(serverNoContextTakeover: true))
        defer { try? loop.syncShutdownGracefully() }
        #expect {
            try client.inflate(
                ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x00]), limit: 1 << 20, allocator: ByteBufferAllocator())
        } throws: { error in
            (error as? FramingError)?.cause == .protocolError
        }
    }

    @Test("messages under the minimum size go uncompressed")
    func minimumSize() throws {
        let (server, _, loop) = codecs(
            PerMessageDeflate.Agreement(serverNoContextTakeover: true), options: DeflateOptions(minimumSize: 128))
        defer { try? loop.syncShutdownGracefully() }
        #expect(
            server.deflate(ByteBuffer(string: String(repeating: "a", count: 127)), allocator: ByteBufferAllocator())
                == nil)
        #expect(
            server.deflate(ByteBuffer(string: String(repeating: "a", count: 128)), allocator: ByteBufferAllocator())
                != nil)
    }
}
