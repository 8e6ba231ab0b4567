#if canImport(Glibc)
    import Glibc
#endif

/// The process's open-file limit: each WebSocket connection holds one descriptor.
public enum OpenFileLimit {
    public struct Limits: Sendable, Hashable {
        public var soft: UInt64
        public var hard: UInt64
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit and returns the limits now in force.
    public static func raiseToHardLimit() -> Limits? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Limits(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// Descriptors needed beyond the connections themselves: listeners, status API clients,
    /// the standard streams and the event loops' own (epoll, eventfd, timerfd per loop).
    public static let overhead: UInt64 = 64
}
