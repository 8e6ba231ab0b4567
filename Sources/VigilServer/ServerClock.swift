import NIOCore
import VigilSupervisor

/// The monotonic clock the shells stamp supervisor events with: NIO's own, so supervisor
/// deadlines convert to `NIODeadline`s exactly.
enum ServerClock {
    static func now() -> MonotonicInstant {
        MonotonicInstant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
    }

    static func deadline(_ instant: MonotonicInstant) -> NIODeadline {
        .uptimeNanoseconds(UInt64(max(0, instant.nanoseconds)))
    }
}
