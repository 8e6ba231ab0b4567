/// The payload of a ping vigild sends: an 8-byte big-endian sequence number.
///
/// Only a pong echoing the payload of the outstanding ping ends the wait for it; anything else is
/// an unsolicited pong (activity, not a round trip).
public struct PingPayload: Sendable, Hashable {
    public var sequence: UInt64

    public init(sequence: UInt64) {
        self.sequence = sequence
    }

    /// Reads a payload back from pong bytes; `nil` when the bytes are not one of ours.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        var value: UInt64 = 0
        for byte in bytes { value = value << 8 | UInt64(byte) }
        self.sequence = value
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * $0)) }
    }
}
