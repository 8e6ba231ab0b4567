/// When a monitor dials its target again, after a connection or a dial attempt ended. Sans-IO:
/// the caller says how the last try ended and passes the random source; this says how long to
/// wait.
///
/// | how the last try ended | wait |
/// |---|---|
/// | the first failure (or the first after a connection that lasted `resetAfter`) | random in 0 to `firstDelayMax` (RFC 6455 §7.2.3) |
/// | the n-th failure in a row | random in 0 to min(`maximum`, `firstDelayMax` × 2^(n−1)) (truncated exponential, full jitter) |
/// | close 1008 (policy), 1003 (unacceptable data), 4000–4999 (application policy), HTTP 401 or 403 | `maximum`: asking again soon will not help |
/// | HTTP 503 or 429 with `Retry-After: N` | N seconds (at most `retryAfterCap`) |
/// | close 1012 (service restart) or 1013 (try again later) | as a failure, but never under `firstDelayMax` |
///
/// A connection that stayed up for `resetAfter` or longer resets the count of failures.
public struct ReconnectBackoff: Sendable, Hashable {
    public var firstDelayMax: Duration
    public var maximum: Duration
    public var resetAfter: Duration
    /// The most a server's `Retry-After` is honoured for.
    public static let retryAfterCap = Duration.seconds(3600)

    /// Failures since the last connection that counted as up for good.
    public private(set) var consecutiveFailures = 0

    public init(firstDelayMax: Duration = .seconds(5), maximum: Duration, resetAfter: Duration) {
        self.firstDelayMax = firstDelayMax
        self.maximum = maximum
        self.resetAfter = resetAfter
    }

    /// How the last try ended.
    public enum Ending: Sendable, Hashable {
        /// A connection was up for `upFor` and then closed with `code` (1006 when no close
        /// frame came).
        case closed(code: UInt16, upFor: Duration)
        /// The dial failed before the upgrade; `httpStatus` when the server refused it, with its
        /// `Retry-After` in seconds when it sent one.
        case dialFailed(httpStatus: Int?, retryAfter: Duration?)
    }

    /// Why the wait is as long as it is: what `/targets` shows beside the next attempt.
    public enum Rule: String, Sendable, Hashable {
        case first
        case exponential
        case policy
        case retryAfter = "retry_after"
        case serverBusy = "server_busy"
    }

    /// The wait before the next dial, counting this ending.
    public mutating func next(after ending: Ending, using random: inout some RandomNumberGenerator) -> (
        delay: Duration, rule: Rule
    ) {
        switch ending {
        case .closed(let code, let upFor):
            if upFor >= resetAfter { consecutiveFailures = 0 }
            consecutiveFailures += 1
            if Self.isPolicyRefusal(code: code) { return (maximum, .policy) }
            if code == 1012 || code == 1013 {
                return (max(firstDelayMax, jittered(using: &random)), .serverBusy)
            }
        case .dialFailed(let status, let retryAfter):
            consecutiveFailures += 1
            if status == 401 || status == 403 { return (maximum, .policy) }
            if let retryAfter, status == 503 || status == 429 {
                return (min(retryAfter, Self.retryAfterCap), .retryAfter)
            }
        }
        return (jittered(using: &random), consecutiveFailures == 1 ? .first : .exponential)
    }

    /// A close status by which the server says the same request will be refused again.
    static func isPolicyRefusal(code: UInt16) -> Bool {
        code == 1008 || code == 1003 || (4000...4999).contains(code)
    }

    /// The ceiling for the current count, and a random wait under it.
    private func jittered(using random: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(forFailure: consecutiveFailures)
        let nanoseconds = ceiling.inNanoseconds
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &random))
    }

    /// min(`maximum`, `firstDelayMax` × 2^(n−1)) for the n-th failure in a row.
    public func ceiling(forFailure n: Int) -> Duration {
        guard n > 1 else { return min(firstDelayMax, maximum) }
        let doublings = min(n - 1, 40)
        let grown = firstDelayMax.inNanoseconds.multipliedReportingOverflow(by: Int64(1) << doublings)
        if grown.overflow { return maximum }
        return min(maximum, .nanoseconds(grown.partialValue))
    }
}
