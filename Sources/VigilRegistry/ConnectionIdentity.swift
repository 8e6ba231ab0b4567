/// Which side of vigild a connection faces: a client that connected to vigild, the upstream
/// vigild dialed for a proxied pair, or a monitor target vigild dialed and holds.
public enum ConnectionLeg: String, Sendable, Hashable, CaseIterable {
    case client
    case upstream
    case target

    /// Who opened the connection: `inbound` (a client of vigild's) or `outbound` (vigild dialed).
    public var direction: String { self == .client ? "inbound" : "outbound" }
}

/// The proxy facts of a connection: the pair it belongs to, the upstream URL, and the pool
/// member it names (route and member as configured).
public struct PairLink: Sendable, Hashable {
    public var pairID: UInt64
    public var upstream: String
    public var route: String
    public var member: String

    public init(pairID: UInt64, upstream: String, route: String, member: String) {
        self.pairID = pairID
        self.upstream = upstream
        self.route = route
        self.member = member
    }
}

/// What a TLS connection agreed: the version, and the server name the client asked for (SNI),
/// if it sent one.
public struct TLSFacts: Sendable, Hashable {
    /// `TLSv1.3`
    public var version: String
    public var serverName: String?

    public init(version: String, serverName: String?) {
        self.version = version
        self.serverName = serverName
    }
}

/// Who a connection is: what is known when it opens and never changes. The live entry, its
/// snapshots and its close record share it, and `fields` lists it once for the log (each
/// connection's log lines and its close line) and the status JSON (`/connections`, `/closes`):
/// a new fact about connections is added here and shows everywhere.
public struct ConnectionIdentity: Sendable, Hashable {
    /// The client: `address:port` of the TCP peer, or behind a trusted balancer the client it
    /// named (a PROXY header's `address:port`, a forwarded header's address).
    public var peer: String
    /// The trusted balancer the client came through (`address:port`), when `peer` is not the TCP peer.
    public var via: String?
    /// The name the client gave itself with `?client=`, if any.
    public var client: String?
    public var path: String
    public var leg: ConnectionLeg
    /// Set for both legs of a proxied pair.
    public var pair: PairLink?
    /// The monitor target's name, for a target connection.
    public var target: String?
    /// The permessage-deflate agreed, as the handshake's answer said it (`nil`: none).
    public var compression: String?
    /// The connection's TLS (`nil`: plain TCP).
    public var tls: TLSFacts?
    /// The listener's route it came by (both legs of a pair); `nil` for a monitor target.
    public var route: String?

    public init(
        peer: String, client: String? = nil, path: String, leg: ConnectionLeg = .client, pair: PairLink? = nil,
        target: String? = nil, compression: String? = nil, tls: TLSFacts? = nil, via: String? = nil,
        route: String? = nil
    ) {
        self.route = route
        self.peer = peer
        self.via = via
        self.client = client
        self.path = path
        self.leg = leg
        self.pair = pair
        self.target = target
        self.compression = compression
        self.tls = tls
    }

    /// The longest client name accepted with `?client=`.
    public static let maxClientNameLength = 64

    /// A client name vigild keeps: 1 to 64 printable ASCII characters.
    public static func isValidClientName(_ name: String) -> Bool {
        (1...maxClientNameLength).contains(name.utf8.count) && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// One fact as the JSON and the log carry it.
    public struct Field: Sendable {
        /// The JSON key; the log's metadata key is `ws_` and this.
        public var name: String
        public var value: Value
        /// Logged as an empty value when unknown (`ws_client`, documented so), rather than left out.
        public var loggedWhenUnknown: Bool
        /// Carried by every log line of the connection, not only its close line. Each field
        /// so carried is an entry in the metadata of the logger every connection keeps; an echo
        /// connection has six, and a seventh doubles that dictionary's storage (0.85 KiB more
        /// per idle connection, measured).
        public var onEveryLine: Bool

        init(_ name: String, _ value: Value, loggedWhenUnknown: Bool = false, onEveryLine: Bool = true) {
            self.name = name
            self.value = value
            self.loggedWhenUnknown = loggedWhenUnknown
            self.onEveryLine = onEveryLine
        }

        /// The log's metadata key.
        public var logKey: String { "ws_" + name }
    }

    public enum Value: Sendable, Hashable {
        case text(String)
        case number(UInt64)
        /// Not known for this connection: `null` in JSON.
        case unknown

        /// As a log field's value: the text or number, empty when unknown.
        public var logText: String {
            switch self {
            case .text(let text): text
            case .number(let number): String(number)
            case .unknown: ""
            }
        }
    }

    /// Every fact, in the order the log writes them.
    public var fields: [Field] {
        [
            Field("peer", .text(peer)),
            Field("client", client.map(Value.text) ?? .unknown, loggedWhenUnknown: true),
            Field("path", .text(path)),
            Field("leg", .text(leg.rawValue)),
            Field("direction", .text(leg.direction)),
            Field("target", target.map(Value.text) ?? .unknown),
            Field("pair_id", pair.map { .number($0.pairID) } ?? .unknown),
            Field("upstream", pair.map { .text($0.upstream) } ?? .unknown),
            Field("compression", compression.map(Value.text) ?? .unknown, onEveryLine: false),
            Field("tls", tls.map { .text($0.version) } ?? .unknown, onEveryLine: false),
            Field("tls_server_name", tls?.serverName.map(Value.text) ?? .unknown, onEveryLine: false),
            Field("via", via.map(Value.text) ?? .unknown, onEveryLine: false),
            Field("route", route.map(Value.text) ?? .unknown, onEveryLine: false),
            Field("member", pair.map { .text($0.member) } ?? .unknown, onEveryLine: false),
        ]
    }

    /// The fields as log metadata values (`ws_peer` …), leaving out unknown ones but `ws_client`:
    /// the close line's.
    public var logFields: [(key: String, value: String)] {
        fields.compactMap { field in
            field.value == .unknown && !field.loggedWhenUnknown ? nil : (field.logKey, field.value.logText)
        }
    }

    /// The log fields every line of the connection carries.
    public var everyLineLogFields: [(key: String, value: String)] {
        fields.compactMap { field in
            !field.onEveryLine || (field.value == .unknown && !field.loggedWhenUnknown)
                ? nil : (field.logKey, field.value.logText)
        }
    }
}
