/// One route of the WebSocket listener as the status API reports it (`/routes`): what it takes
/// and, for a proxy route, its pool at one moment — so the status API reads routes without
/// knowing how pairs are dialed.
public struct RouteReport: Sendable {
    public var name: String
    public var path: String
    /// Host-name patterns; empty: any host.
    public var hosts: [String]
    /// `echo`, `command` or `proxy`.
    public var mode: String
    /// `round_robin` or `least_connections`; `nil` but for a proxy route.
    public var balance: String?
    public var members: [Member]

    public struct Member: Sendable {
        public var name: String
        public var url: String
        public var up: Bool
        /// Pairs open (or being opened) to it.
        public var pairs: Int
        public var drain: Bool

        public init(name: String, url: String, up: Bool, pairs: Int, drain: Bool) {
            self.name = name
            self.url = url
            self.up = up
            self.pairs = pairs
            self.drain = drain
        }
    }

    public init(name: String, path: String, hosts: [String], mode: String, balance: String?, members: [Member]) {
        self.name = name
        self.path = path
        self.hosts = hosts
        self.mode = mode
        self.balance = balance
        self.members = members
    }
}
