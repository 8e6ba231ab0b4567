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
///   connections from one IP address beyond the limit get 429 with `Retry-After`.
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
    private let addressLog = NIOLockedValueBox<[String: (loggedAt: ContinuousClock.Instant, suppressed: Int)]>([:])
    let descriptorLog = RateLimitedLog(perSecond: 1, what: "connections closed for want of descriptors")

    init(settings: VigilSettings, descriptorBudget: Int?) {
        self.maxPending = settings.maxPendingHandshakes
        self.maxPerAddress = settings.maxConnectionsPerIP
        self.descriptorBudget = descriptorBudget
    }

    /// Handshakes in progress (for tests and `/status`).
    var pendingCount: Int { pending.load(ordering: .relaxed) }

    /// Decides for a connection from `address` while `openSockets` WebSocket-side sockets are
    /// open (this one included). An admitted connection counts as pending until
    /// `handshakeEnded()`; every connection counts against its address until `closed(address:)`.
    func decide(address: String?, openSockets: Int) -> Decision {
        if let descriptorBudget, openSockets > descriptorBudget { return .drop }
        if maxPerAddress > 0, let address {
            let count = perAddress.withLockedValue { counts -> Int in
                counts[address, default: 0] += 1
                return counts[address]!
            }
            if count > maxPerAddress {
                return .refuse(
                    HandshakeRejection(
                        status: .tooManyRequests, reason: .perIPLimit,
                        message:
                            "\(address) already has \(maxPerAddress) connections (max_connections_per_ip); try again later",
                        extraHeaders: [("Retry-After", "5")]))
            }
        }
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
        let now = ContinuousClock.now
        let suppressed: Int? = addressLog.withLockedValue { log in
            if let entry = log[address], now - entry.loggedAt < Self.addressLogInterval {
                log[address]!.suppressed += 1
                return nil
            }
            let suppressed = log[address]?.suppressed ?? 0
            if log.count > 10_000 { log = log.filter { now - $0.value.loggedAt < Self.addressLogInterval } }
            log[address] = (now, 0)
            return suppressed
        }
        guard let suppressed else { return }
        let since = suppressed > 0 ? " (\(suppressed) more from it since the last line)" : ""
        logger.warning(
            "refusing connections from \(address): \(message)\(since); logged once a minute per address",
            metadata: ["address": "\(address)", "suppressed": "\(suppressed)"])
    }

    /// An address as the per-address limit counts it: IPv4-mapped IPv6 as plain IPv4.
    static func key(for address: SocketAddress?) -> String? {
        guard let ip = address?.ipAddress else { return nil }
        if ip.hasPrefix("::ffff:"), ip.dropFirst(7).contains(".") { return String(ip.dropFirst(7)) }
        return ip
    }
}
