import NIOCore
import VigilSupervisor

/// The monotonic clock a supervised connection stamps its supervisor's events with, and its
/// timer wheel ticks by. The system clock is NIO's own, so deadlines convert to `NIODeadline`s
/// exactly; tests pass the clock of an `EmbeddedEventLoop`, which moves only when they say.
public struct ConnectionClock: Sendable {
    private let read: @Sendable () -> MonotonicInstant

    public init(_ read: @escaping @Sendable () -> MonotonicInstant) {
        self.read = read
    }

    public func now() -> MonotonicInstant { read() }

    public static let system = ConnectionClock { MonotonicInstant(NIODeadline.now()) }
}

extension MonotonicInstant {
    /// The same point on NIO's clock.
    public init(_ deadline: NIODeadline) {
        self.init(nanoseconds: Int64(truncatingIfNeeded: deadline.uptimeNanoseconds))
    }
}
