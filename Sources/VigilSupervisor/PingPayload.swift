/// The payload of a ping this end sends: 8 bytes no one can guess.
///
/// Only a pong echoing the payload of the outstanding ping ends the wait for it; anything else is
/// an unsolicited pong (activity, not a round trip). A counter (1, 2, 3, …) would let a peer that
/// never reads answer every ping blind and look alive; the payloads come from `PingPayloads`
/// instead, seeded per connection from the system's random source.
public struct PingPayload: Sendable, Hashable {
    public var value: UInt64

    public init(value: UInt64) {
        self.value = value
    }

    /// Reads a payload back from pong bytes; `nil` when the bytes are not one of ours.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        var value: UInt64 = 0
        for byte in bytes { value = value << 8 | UInt64(byte) }
        self.value = value
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }
}

/// One connection's sequence of ping payloads: SplitMix64 over a 64-bit seed the I/O shell takes
/// from the system's random source (the supervisor itself reads no randomness, so tests pass a
/// fixed seed). Consecutive payloads reveal nothing usable to a peer that does not read them.
public struct PingPayloads: Sendable, Hashable {
    private var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> PingPayload {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return PingPayload(value: z ^ (z >> 31))
    }
}
