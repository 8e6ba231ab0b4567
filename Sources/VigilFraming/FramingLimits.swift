/// Size limits the framing core enforces on what the peer sends.
public struct FramingLimits: Sendable, Hashable {
    /// The largest single frame accepted. Checked from the frame header, before its payload is
    /// buffered, so a peer cannot make vigild hold a huge frame in memory. At most `UInt32.max`.
    public var maxFrameSize: Int
    /// The largest message (all fragments together) accepted; caps the memory one message holds.
    public var maxMessageSize: Int

    public init(maxFrameSize: Int = 64 * 1024, maxMessageSize: Int = 1024 * 1024) {
        precondition(
            maxFrameSize > 0 && maxFrameSize <= Int(UInt32.max), "max frame size out of range: \(maxFrameSize)")
        precondition(maxMessageSize > 0, "max message size out of range: \(maxMessageSize)")
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
    }
}
