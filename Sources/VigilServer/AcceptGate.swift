import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import VigilConfig
import VigilHost

/// Decides, as each TCP connection is accepted on the WebSocket listener, whether it may go on
/// to its handshake. Connections that have not upgraded yet do not count against
/// `max_connections`, so without these limits a flood of them, each held until the handshake
/// timeout, could take every descriptor (the accept loop would then fail on EMFILE, and
/// sd_notify, which opens a socket per message, with it):
/// - **descriptors**: beyond `soft RLIMIT_NOFILE − reserve` sockets the connection is closed at
///   once, unanswered; the reserve keeps room for the status API, the service manager's
///   notifications and the journal.
/// - **per address** (`max_connections_per_ip`, off by default): pending and upgraded
///   connections from one IP address beyond the limit get 429 with `Retry-After`; behind a
///   trusted balancer, counted by the client's address once it is known.
/// - **pending handshakes** (`max_pending_handshakes`): beyond it, 503 with `Retry-After`.
/// A refused connection is answered when its request head arrives, and closed within
/// `refusalTimeout` if it sends none.
final class AcceptGate: Sendable {
    /// What happens to one accepted connection.
    enum Decision {
        /// Go on to the handshake, counted as pending until it ends.
        case admit
        /// Answer the request with this refusal, then close.
        case refuse(HandshakeRejection)
        /// Close at once: no descriptor to spare for an answer.
        case drop
    }

    /// How long a refused connection may take to send the request it is refused.
    static let refusalTimeout = TimeAmount.seconds(2)
    /// How often a refused address is logged, at most.
    static let addressLogInterval = Duration.seconds(60)

    let maxPending: Int
    let maxPerAddress: Int
    /// Sockets the WebSocket side may hold (accepted and upstream); `nil`: no limit known.
    let descriptorBudget: Int?
    private let pending = Atomic<Int>(0)
    private let perAddress = NIOLockedValueBox<[String: Int]>([:])
    private let addressLog = OncePerAddressLog(interval: addressLogInterval)
    let descriptorLog = RateLimitedLog(perSecond: 1, what: "connections closed for want of descriptors")

    init(settings: VigilSettings, descriptorBudget: Int?) {
        self.maxPending = settings.maxPendingHandshakes
        self.maxPerAddress = settings.maxConnectionsPerIP
        self.descriptorBudget = descriptorBudget
    }

    /// Handshakes in progress (for tests and `/status`).
    var pendingCount: Int { pending.load(ordering: .relaxed) }

    /// Decides for a connection while `openSockets` WebSocket-side sockets are open (this one
    /// included), and, when its client's `address` is known already, counts it there (see
    /// `count(address:)`). An admitted connection counts as pending until `handshakeEnded()`.
    func decide(address: String?, openSockets: Int) -> Decision {
        if let descriptorBudget, openSockets > descriptorBudget { return .drop }
        if let address, let refusal = count(address: address) { return .refuse(refusal) }
        while true {
            let current = pending.load(ordering: .relaxed)
            guard current < maxPending else {
                return .refuse(
                    HandshakeRejection(
                        status: .serviceUnavailable, reason: .pendingHandshakes,
                        message:
                            "vigild has \(maxPending) handshakes in progress (max_pending_handshakes); try again later",
                        extraHeaders: [("Retry-After", "1")]))
            }
            if pending.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged {
                return .admit
            }
        }
    }

    /// Counts a connection against its client's `address` (`max_connections_per_ip`) until
    /// `closed(address:)`: at accept, or behind a trusted balancer once the client is known
    /// (the PROXY header, the request's forwarded headers). The refusal when over the limit.
    func count(address: String) -> HandshakeRejection? {
        guard maxPerAddress > 0 else { return nil }
        let count = perAddress.withLockedValue { counts -> Int in
            counts[address, default: 0] += 1
            return counts[address]!
        }
        guard count > maxPerAddress else { return nil }
        return HandshakeRejection(
            status: .tooManyRequests, reason: .perIPLimit,
            message: "\(address) already has \(maxPerAddress) connections (max_connections_per_ip); try again later",
            extraHeaders: [("Retry-After", "5")])
    }

    func handshakeEnded() {
        pending.subtract(1, ordering: .relaxed)
    }

    func closed(address: String?) {
        guard maxPerAddress > 0, let address else { return }
        perAddress.withLockedValue { counts in
            if let count = counts[address], count > 1 {
                counts[address] = count - 1
            } else {
                counts[address] = nil
            }
        }
    }

    /// Logs a per-address refusal once per address and `addressLogInterval`, with how many
    /// went unlogged since: a flood from one address is one line a minute, not one per request.
    func logAddressRefusal(_ logger: Logger, address: String, message: String) {
        addressLog.log(logger, address: address) { suppressed in
            let since = suppressed > 0 ? " (\(suppressed) more from it since the last line)" : ""
            return "refusing connections from \(address): \(message)\(since); logged once a minute per address"
        }
    }

    /// An address as the per-address limit counts it: IPv4-mapped IPv6 as plain IPv4.
    static func key(for address: SocketAddress?) -> String? {
        guard let ip = address?.ipAddress else { return nil }
        if ip.hasPrefix("::ffff:"), ip.dropFirst(7).contains(".") { return String(ip.dropFirst(7)) }
        return ip
    }
}
