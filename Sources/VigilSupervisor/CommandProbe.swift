/// A monitor's application round trip, as the seed's client does it: every `every`, a request
/// whose template's `{{id}}` becomes a fresh integer; its reply is the message whose JSON
/// `"requestID"` is that integer. A request unanswered for `replyWithin` is a timeout; after
/// `givesUpAfter` timeouts in a row the connection is given up (`reply_timeout`): the remote
/// end answers pings but not requests. Sans-IO: the caller sends what it is told to and calls
/// back at `nextDeadline`.
public struct CommandProbe: Sendable {
    public struct Rules: Sendable, Hashable {
        public var every: Duration
        public var replyWithin: Duration
        /// The request text; every `{{id}}` in it becomes the request's id.
        public var template: String

        public init(every: Duration, replyWithin: Duration, template: String) {
            self.every = every
            self.replyWithin = replyWithin
            self.template = template
        }
    }

    /// Timeouts in a row after which the connection is given up.
    public static let givesUpAfter = 3

    public let rules: Rules
    private var nextID: Int64 = 1
    private var nextSendAt: MonotonicInstant
    /// Requests sent and not answered yet, oldest first.
    private var outstanding: [(id: Int64, sentAt: MonotonicInstant)] = []
    public private(set) var consecutiveTimeouts = 0
    public private(set) var timeouts: UInt64 = 0
    public private(set) var replies: UInt64 = 0
    /// The last reply's time from request to reply.
    public private(set) var lastReply: Duration?

    /// The first request goes out at `now`.
    public init(rules: Rules, startingAt now: MonotonicInstant) {
        self.rules = rules
        self.nextSendAt = now
    }

    public enum Action: Sendable, Hashable {
        case send(String)
        /// Give the connection up: `reason` goes into the close frame.
        case giveUp(reason: String)
    }

    /// When to call `due(at:)` next.
    public var nextDeadline: MonotonicInstant {
        guard let oldest = outstanding.first else { return nextSendAt }
        return min(nextSendAt, oldest.sentAt + rules.replyWithin)
    }

    /// Expires late requests and sends the next one when it is time.
    public mutating func due(at now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        while let oldest = outstanding.first, oldest.sentAt + rules.replyWithin <= now {
            outstanding.removeFirst()
            timeouts += 1
            consecutiveTimeouts += 1
            if consecutiveTimeouts >= Self.givesUpAfter {
                outstanding.removeAll()
                return [.giveUp(reason: "\(consecutiveTimeouts) requests unanswered")]
            }
        }
        if now >= nextSendAt {
            let id = nextID
            nextID += 1
            outstanding.append((id, now))
            actions.append(.send(rules.template.replacingAll("{{id}}", with: String(id))))
            nextSendAt = now + rules.every
        }
        return actions
    }

    /// A message arrived: the round trip of the request it answers, or `nil` when it answers
    /// none still outstanding (an unrelated message, or a reply too late to count).
    public mutating func received(_ text: String, at now: MonotonicInstant) -> Duration? {
        guard let id = Self.requestID(in: text), let index = outstanding.firstIndex(where: { $0.id == id }) else {
            return nil
        }
        let roundTrip = now - outstanding[index].sentAt
        outstanding.remove(at: index)
        consecutiveTimeouts = 0
        replies += 1
        lastReply = roundTrip
        return roundTrip
    }

    /// The integer after the first `"requestID"` key: `{"requestID": 12, …}`. Not a JSON parser;
    /// a reply whose id is a string or is missing answers nothing.
    static func requestID(in text: String) -> Int64? {
        let bytes = Array(text.utf8)
        let key = Array("\"requestID\"".utf8)
        guard bytes.count >= key.count else { return nil }
        var start = 0
        while start + key.count <= bytes.count {
            guard bytes[start..<start + key.count].elementsEqual(key) else {
                start += 1
                continue
            }
            var index = start + key.count
            func skipSpace() {
                while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
            }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                start += 1
                continue
            }
            index += 1
            skipSpace()
            var digits = ""
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
                digits.append("-")
                index += 1
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]), digits.count < 20
            {
                digits.append(Character(Unicode.Scalar(bytes[index])))
                index += 1
            }
            return Int64(digits)
        }
        return nil
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation in this module).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
