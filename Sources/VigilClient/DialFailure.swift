import VigilConfig
import VigilText

/// Why a WebSocket connection could not be opened, by the phase that failed: what a proxy
/// answers its client with (502, 504, or the upstream's own refusal) and what a monitor reports.
public enum DialFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The host name did not resolve.
    case resolution(host: String, reason: String)
    /// TCP failed: refused, unreachable, reset before the handshake.
    case connection(reason: String)
    /// The TLS handshake failed (a certificate error names the problem).
    case tls(reason: String)
    /// No complete answer within the connect timeout (TCP, TLS and the upgrade together).
    case timeout(phase: String, after: Duration)
    /// The server answered the upgrade with an HTTP status other than 101.
    case refused(HTTPRefusal)
    /// The server's answer was not a valid upgrade (bad accept key, an unoffered subprotocol,
    /// extensions nobody asked for, not HTTP at all).
    case badHandshake(reason: String)
    /// The connection closed before the server answered.
    case closedDuringHandshake

    /// The phase, as metrics and reports name it.
    public var phase: String {
        switch self {
        case .resolution: "dns"
        case .connection: "tcp"
        case .tls: "tls"
        case .timeout: "timeout"
        case .refused: "http"
        case .badHandshake, .closedDuringHandshake: "handshake"
        }
    }

    public var description: String {
        switch self {
        case .resolution(let host, let reason): "cannot resolve \(host): \(reason)"
        case .connection(let reason): "cannot connect: \(reason)"
        case .tls(let reason): "TLS handshake failed: \(reason)"
        case .timeout(let phase, let after): "no answer within \(DurationText.setting(after)) (\(phase))"
        case .refused(let refusal):
            "refused the upgrade with HTTP \(refusal.status)\(refusal.reason.isEmpty ? "" : " \(refusal.reason)")"
        case .badHandshake(let reason): "invalid upgrade response: \(reason)"
        case .closedDuringHandshake: "the connection closed before the WebSocket handshake completed"
        }
    }
}

/// A server's HTTP answer to an upgrade request that it refused.
public struct HTTPRefusal: Sendable, Hashable {
    public var status: Int
    public var reason: String
    public var headers: [HTTPHeaderField]
    /// At most `maxBody` bytes of the body.
    public var body: [UInt8]

    /// The most of a refusal's body that is kept.
    public static let maxBody = 4096

    public init(status: Int, reason: String, headers: [HTTPHeaderField], body: [UInt8]) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// One header line.
public struct HTTPHeaderField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
