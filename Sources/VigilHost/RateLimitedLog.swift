import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A log line that junk must not be able to multiply: at most `perSecond` lines a second, and
/// for the rest one summary a second later, `42 more rejected handshakes not logged in the last
/// second`. Shared by every connection of a listener; the lock is taken once per line, which a
/// flood pays for only up to the budget.
public final class RateLimitedLog: Sendable {
    private struct State {
        var windowStart = NIODeadline.uptimeNanoseconds(0)
        var logged = 0
        var suppressed = 0
        var summaryPending = false
    }

    private let state = NIOLockedValueBox(State())
    private let perSecond: Int
    /// What the summary calls the lines it stands for (`rejected handshakes`).
    private let what: String

    public init(perSecond: Int, what: String) {
        self.perSecond = perSecond
        self.what = what
    }

    /// Writes `message` unless this second's budget is spent; a spent budget schedules the
    /// summary on `eventLoop`.
    public func log(
        _ logger: Logger, level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata, on eventLoop: any EventLoop
    ) {
        let now = NIODeadline.now()
        let (allowed, scheduleSummary) = state.withLockedValue { state -> (Bool, Bool) in
            if now - state.windowStart >= .seconds(1) {
                state.windowStart = now
                state.logged = 0
            }
            if state.logged < perSecond {
                state.logged += 1
                return (true, false)
            }
            state.suppressed += 1
            defer { state.summaryPending = true }
            return (false, !state.summaryPending)
        }
        if allowed {
            logger.log(level: level, message(), metadata: metadata())
        } else if scheduleSummary {
            eventLoop.scheduleTask(in: .seconds(1)) { self.summarize(logger) }
        }
    }

    private func summarize(_ logger: Logger) {
        let count = state.withLockedValue { state in
            defer {
                state.suppressed = 0
                state.summaryPending = false
            }
            return state.suppressed
        }
        guard count > 0 else { return }
        logger.notice(
            "\(count) more \(what) not logged in the last second (at most \(perSecond) a second are)",
            metadata: ["suppressed": "\(count)"])
    }
}
