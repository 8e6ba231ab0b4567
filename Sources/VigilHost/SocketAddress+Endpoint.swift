import NIOCore

extension SocketAddress {
    /// `10.0.0.7:51234` or `[::1]:51234`, as operators write addresses (NIO's description is
    /// `[IPv4]10.0.0.7/10.0.0.7:51234`).
    public var endpointDescription: String {
        guard let ip = ipAddress, let port else { return description }
        return self.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
