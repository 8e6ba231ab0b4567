import NIOHTTP1
import VigilConfig
import VigilHost
import VigilText

#if canImport(Glibc)
    import Glibc
#endif

/// Who may read the status API, checked before a request is routed. Pure, so every rule is a
/// unit test.
///
/// - **Host** (TCP listeners only): the `Host` header must name an IP address, `localhost`, or
///   one of `status_hosts`; anything else gets 421. An HTTP/1.1 request without it, or any with
///   two, gets 400 (RFC 9112 §3.2). A page on `attacker.example` whose name the
///   attacker later points at 127.0.0.1 (DNS rebinding) sends `Host: attacker.example` and
///   learns nothing.
/// - **Token** (TCP listeners only, when `status_token_file` is set): every endpoint but `/livez`,
///   `/readyz` and the status page `/` (a static document; its own requests carry the token) needs `Authorization: Bearer <token>`; 401 otherwise.
/// - The Unix socket is guarded by its owner, group and mode instead: no Host, no token.
public struct StatusAccess: Sendable {
    /// Which listener a request came in on.
    enum Transport: Sendable {
        case tcp
        case unixSocket
    }

    /// Endpoints that need no token (`StatusOpenEndpoints`).
    static let openEndpoints = Set(StatusOpenEndpoints.paths.map { Substring($0) })

    let token: [UInt8]?
    let hosts: Set<String>

    init(token: [UInt8]?, hosts: [String]) {
        self.token = token
        self.hosts = Set(hosts)
    }

    /// The access rules `settings` ask for; reads `status_token_file` (once per start or reload).
    public static func make(_ settings: VigilSettings) throws -> StatusAccess {
        StatusAccess(token: try settings.statusTokenFile.map(readToken), hosts: settings.statusHosts)
    }

    /// The token: the file's content without its trailing newline, RFC 6750's token characters
    /// only, at least 16 of them.
    static func readToken(_ path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw StartupError(message: "cannot read status_token_file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 4096 {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw StartupError(
                    message: "cannot read status_token_file \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=".utf8)
        guard (16...4096).contains(bytes.count), bytes.allSatisfy(allowed.contains) else {
            throw StartupError(
                message:
                    "status_token_file \(path) must hold one token of 16 to 4096 characters (letters, digits and -._~+/=), e.g. from `openssl rand -hex 32`"
            )
        }
        return bytes
    }

    /// `nil` when the request may be routed, else the refusal to send.
    func check(path: Substring, headers: HTTPHeaders, version: HTTPVersion = .http1_1, transport: Transport)
        -> StatusResponse?
    {
        guard transport == .tcp else { return nil }
        // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two, is a 400;
        // an HTTP/1.0 request may lack it (it names no host to check).
        let hostFields = headers.reduce(0) { $0 + ($1.name.lowercased() == "host" ? 1 : 0) }
        if hostFields > 1 || (hostFields == 0 && (version.major, version.minor) >= (1, 1)) {
            return .error(
                .badRequest,
                hostFields > 1
                    ? "a request must carry one Host header, not \(hostFields)" : "an HTTP/1.1 request must carry Host")
        }
        if let host = headers.first(name: "host"), !admits(host: host) {
            return .error(
                .misdirectedRequest,
                "this status API does not answer to Host \"\(Printable.escaped(host[...]))\"; it answers to IP addresses, localhost"
                    + (hosts.isEmpty ? "" : ", " + hosts.sorted().joined(separator: ", "))
                    + " (status_hosts adds names)")
        }
        guard let token, !Self.openEndpoints.contains(path) else { return nil }
        let presented = headers.first(name: "authorization").flatMap(Self.bearerToken)
        guard let presented, Self.constantTimeEqual(Array(presented.utf8), token) else {
            var response = StatusResponse.error(
                .unauthorized,
                presented == nil
                    ? "\(Printable.escaped(path)) needs Authorization: Bearer with the token in status_token_file (\(StatusOpenEndpoints.text) do not)"
                    : "the bearer token is not the one in status_token_file")
            response.headers = [
                (
                    "WWW-Authenticate",
                    presented == nil ? "Bearer realm=\"vigil\"" : "Bearer realm=\"vigil\", error=\"invalid_token\""
                )
            ]
            return response
        }
        return nil
    }

    /// `127.0.0.1:9090`, `[::1]`, `localhost`, or a configured name, with or without a port.
    func admits(host header: String) -> Bool {
        let name: Substring
        if header.hasPrefix("[") {
            guard let close = header.firstIndex(of: "]") else { return false }
            let rest = header[header.index(after: close)...]
            guard rest.isEmpty || Self.isPort(rest) else { return false }
            return Self.isIPv6(header[header.index(after: header.startIndex)..<close])
        }
        if let colon = header.lastIndex(of: ":") {
            guard Self.isPort(header[colon...]) else { return false }
            name = header[..<colon]
        } else {
            name = header[...]
        }
        let lowered = name.lowercased()
        let trimmed = lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
        return trimmed == "localhost" || Self.isIPv4(trimmed[...]) || hosts.contains(trimmed)
    }

    // MARK: - Parsing

    /// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1).
    static func bearerToken(_ value: String) -> String? {
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].drop { $0 == " " }
        return token.isEmpty ? nil : String(token)
    }

    /// Compares without returning early, so the time taken says nothing about how much matched.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }

    private static func isPort(_ text: Substring) -> Bool {
        let digits = text.dropFirst()
        return text.first == ":" && (1...5).contains(digits.count) && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    private static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && UInt8($0) != nil }
    }

    private static func isIPv6(_ text: Substring) -> Bool {
        !text.isEmpty && text.contains(":")
            && text.allSatisfy { $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }
    }
}
