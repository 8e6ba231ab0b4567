import ArgumentParser
import NIOCore
import VigilFraming

/// What an echo message carries (`--payload`).
enum EchoPayload: String, ExpressibleByArgument, CaseIterable {
    /// Binary, every byte `x`: the cheapest to make and to check, and compressible to nothing.
    case filler
    /// Text: a stream of JSON price quotes with varying figures, about as compressible as real
    /// application traffic (permessage-deflate at level 1 takes it to roughly a third).
    case json

    /// A message of `size` bytes.
    func message(size: Int, allocator: ByteBufferAllocator) -> WebSocketMessage {
        switch self {
        case .filler:
            return WebSocketMessage(kind: .binary, data: allocator.buffer(repeating: 0x78, count: size))
        case .json:
            var text = ""
            var seed: UInt64 = 0x5EED
            let symbols = ["VGL", "NIO", "ZLB", "TCP", "RFC", "WSS"]
            while text.utf8.count < size {
                // A 64-bit LCG: the same stream every run, figures that do not repeat.
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let bid = Int((seed >> 40) % 100_000)
                let volume = Int((seed >> 20) & 0xFFF)
                text +=
                    #"{"symbol":"\#(symbols[Int(seed >> 60) % symbols.count])","bid":\#(bid / 100).\#(bid % 100),"#
                    + #""size":\#(volume),"seq":\#(seed >> 48)}"# + "\n"
            }
            var data = allocator.buffer(capacity: size)
            data.writeString(String(text.utf8.prefix(size))!)
            return WebSocketMessage(kind: .text, data: data)
        }
    }
}
