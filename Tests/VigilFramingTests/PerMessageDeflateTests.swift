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
            ("x-webkit-deflate-frame", "only one permessage-deflate was offered"),
            ("permessage-deflate, permessage-deflate", "only one permessage-deflate was offered"),
            ("permessage-deflate; server_no_context_takeover; client_no_context_takeover=1", "takes no value"),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; server_max_window_bits=9",
                "twice"
            ),
            ("permessage-deflate; server_no_context_takeover; x=\u{1B}[31m", "\\u{1b}"),
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

    @Test(
        "a proxy takes an upstream's answer that fits one of the client's offers, and names what does not fit",
        arguments: [
            // (the client's offers, the upstream's answer, the agreement or the refusal's words)
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", "ok"
            ),
            ("permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "ok"),
            (
                "permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=12",
                "fits none"
            ),
            ("permessage-deflate; server_no_context_takeover", "permessage-deflate", "fits none"),
            ("permessage-deflate", "permessage-deflate; client_max_window_bits=12", "fits none"),
            (
                "permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=12",
                "fits none"
            ),
            (
                "permessage-deflate; server_max_window_bits=10, permessage-deflate",
                "permessage-deflate; server_max_window_bits=12", "ok"
            ),
            ("permessage-deflate", "permessage-deflate; client_max_window_bits", "without a value"),
            ("permessage-deflate", "permessage-deflate; mystery", "mystery"),
            ("permessage-deflate", "x-webkit-deflate-frame", "only one permessage-deflate"),
        ])
    func upstreamAnswers(offers: String, answer: String, expected: String) throws {
        let parsed = PerMessageDeflate.offers(in: [offers])
        if expected == "ok" {
            let agreement = try #require(try PerMessageDeflate.agreement(inAnswer: [answer], forOffers: parsed))
            #expect(agreement.headerValue == PerMessageDeflate.offers(in: [answer]).first?.headerValue)
        } else {
            #expect {
                try PerMessageDeflate.agreement(inAnswer: [answer], forOffers: parsed)
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
        #expect(try PerMessageDeflate.agreement(inAnswer: [], forOffers: parsed) == nil)
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

    @Test("compression_min_size holds with context takeover too (RSV1 clear touches no context)")
    func minimumSizeWithTakeover() throws {
        let (server, client, loop) = codecs(PerMessageDeflate.Agreement(), options: DeflateOptions(minimumSize: 128))
        defer { try? loop.syncShutdownGracefully() }
        let allocator = ByteBufferAllocator()
        #expect(server.deflate(ByteBuffer(string: "short"), allocator: allocator) == nil)
        // The context is untouched by the skipped message: the next one still round-trips.
        let text = String(repeating: "context kept ", count: 20)
        let compressed = try #require(server.deflate(ByteBuffer(string: text), allocator: allocator))
        #expect(String(buffer: try client.inflate(compressed, limit: 1 << 20, allocator: allocator)) == text)
    }

    @Test("a message exactly at the limit inflates, one byte more is 1009; what is kept is sized to the message")
    func limitExactly() throws {
        let (server, client, loop) = codecs(PerMessageDeflate.Agreement(serverNoContextTakeover: true))
        defer { try? loop.syncShutdownGracefully() }
        let allocator = ByteBufferAllocator()
        let limit = 200_000  // several of inflate's 64 KiB chunks
        for size in [limit, limit + 1] {
            let compressed = try #require(
                server.deflate(ByteBuffer(repeating: 0x61, count: size), allocator: allocator))
            if size == limit {
                let inflated = try client.inflate(compressed, limit: limit, allocator: allocator)
                #expect(inflated.readableBytes == limit)
                #expect(inflated.capacity <= 2 * limit, "capacity \(inflated.capacity) for \(limit) bytes")
            } else {
                #expect {
                    try client.inflate(compressed, limit: limit, allocator: allocator)
                } throws: { error in
                    (error as? FramingError)?.cause == .messageTooBig
                }
            }
        }
        // Random bytes hardly compress: a message inflated from a large payload keeps no spare room.
        var random = SystemRandomNumberGenerator()
        let noise = ByteBuffer(bytes: (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &random) })
        let inflated = try client.inflate(Self.storedBlocks(noise), limit: 1 << 20, allocator: allocator)
        #expect(inflated == noise)
        #expect(inflated.capacity <= 2 * inflated.readableBytes, "capacity \(inflated.capacity)")
    }

    /// `data` as non-final stored deflate blocks (what a sender that does not compress emits),
    /// the sync flush's tail left off.
    static func storedBlocks(_ data: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        var rest = data
        while let block = rest.readSlice(length: min(65535, rest.readableBytes)), block.readableBytes > 0 {
            let length = UInt16(block.readableBytes)
            out.writeInteger(UInt8(0))  // BFINAL 0, BTYPE 00: stored
            out.writeInteger(length, endianness: .little)
            out.writeInteger(~length, endianness: .little)
            out.writeImmutableBuffer(block)
        }
        return out
    }

    @Test("a sender's final deflate block (RFC 7692 §7.2.3.3) ends its stream: the next message starts a new one")
    func finalBlock() throws {
        // The client keeps its context: the server inflates with a stream of the connection's own.
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let server = MessageDeflate(
            agreement: PerMessageDeflate.Agreement(), role: .server, options: DeflateOptions(),
            streams: DeflateStreams(),
            eventLoop: loop)
        let allocator = ByteBufferAllocator()
        func storedFinal(_ text: String, then extra: [UInt8] = []) -> ByteBuffer {
            var buffer = ByteBuffer(bytes: [0x01, UInt8(text.utf8.count), 0x00, ~UInt8(text.utf8.count), 0xFF])
            buffer.writeString(text)
            buffer.writeBytes(extra)
            return buffer
        }
        #expect(String(buffer: try server.inflate(storedFinal("hello"), limit: 100, allocator: allocator)) == "hello")
        #expect(String(buffer: try server.inflate(storedFinal("again"), limit: 100, allocator: allocator)) == "again")
        #expect {
            try server.inflate(storedFinal("hello", then: Array("junk!".utf8)), limit: 100, allocator: allocator)
        } throws: { error in
            (error as? FramingError)?.cause == .protocolError
        }
    }
}
