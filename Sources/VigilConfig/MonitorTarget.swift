import VigilSupervisor
import VigilText
import Yams

/// One outbound monitor target: a WebSocket service vigild dials, holds, pings and, when
/// `command` is set, sends requests to (the `targets` list of the config file).
public struct MonitorTarget: Sendable, Hashable {
    public var name: String
    public var url: WebSocketURL
    /// `headers` and then `headers_file`'s lines, as sent with the upgrade request.
    public var headers: [Header]
    public var headersFile: String?
    public var subprotocol: String?
    /// Overrides of the global heartbeat; `nil`: `ping_interval` / `pong_timeout`.
    public var pingInterval: Duration?
    public var pongTimeout: Duration?
    public var command: CommandProbe.Rules?
    /// `/health` fails (rather than warns) while this target is not up.
    public var critical: Bool
    /// PEM certificates trusted for this `wss://` target besides the system's trust store.
    public var caFile: String?

    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    /// The config file key of the list.
    public static let configKey = "targets"
    static let keys = [
        "name", "url", "headers", "headers_file", "subprotocol", "ping_interval", "pong_timeout", "command", "critical",
        "ca_file",
    ]
    static let commandKeys = ["every", "message", "reply_within"]
    public static let maxNameLength = 64

    /// This target's heartbeat: the global one with its overrides.
    public func supervisionPolicy(global: SupervisionPolicy) -> SupervisionPolicy {
        var policy = global
        policy.appHeartbeat = nil  // for browser clients of vigild's listener, not for services it dials
        if let pingInterval { policy.pingInterval = pingInterval }
        if let pongTimeout { policy.pongTimeout = pongTimeout }
        return policy
    }

    // MARK: - Parsing

    /// The `targets:` list: each entry a mapping with the keys above; names unique.
    static func parseList(_ node: Node, path: String) throws(ConfigurationError) -> [MonitorTarget] {
        guard let items = node.sequence else {
            throw ConfigurationError("targets in config file \(path) must be a list of targets (- name: …, url: …)")
        }
        var targets: [MonitorTarget] = []
        for (index, item) in items.enumerated() {
            let target = try parse(item, where: "targets[\(index)] in config file \(path)")
            if targets.contains(where: { $0.name == target.name }) {
                throw ConfigurationError(
                    "target \(target.name) appears twice in config file \(path): names must be unique")
            }
            targets.append(target)
        }
        return targets
    }

    static func parse(_ node: Node, where place: String) throws(ConfigurationError) -> MonitorTarget {
        let fields = try ConfigFile.fields(of: node, in: place, shape: "name: …, url: …")
        guard let name = fields["name"]?.scalar?.string else {
            throw ConfigurationError("\(place) needs a name ([a-z0-9_-], unique)")
        }
        guard !name.isEmpty, name.count <= maxNameLength, name.utf8.allSatisfy(isNameByte) else {
            throw ConfigurationError(
                "\(place): name \"\(Printable.escaped(name, limit: 100))\" must be 1 to \(maxNameLength) of a-z, 0-9, _ and - (it is a label and a journal field)"
            )
        }
        let here = "target \(name) (\(place))"
        if let unknown = fields.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ConfigurationError("\(here): unknown key \(unknown); keys: " + keys.joined(separator: ", "))
        }
        func scalar(_ key: String) throws(ConfigurationError) -> String? {
            guard let node = fields[key] else { return nil }
            guard let text = node.scalar?.string, !text.isEmpty else {
                throw ConfigurationError("\(here): \(key) must have a single value")
            }
            return text
        }
        func parsed<T>(_ key: String, _ parse: (String) throws(ValueParsers.Failure) -> T) throws(ConfigurationError)
            -> T?
        {
            guard let text = try scalar(key) else { return nil }
            do {
                return try parse(text)
            } catch {
                throw ConfigurationError(
                    "\(here): invalid value \"\(Printable.escaped(text, limit: 100))\" for \(key): expected \(error.expected)"
                )
            }
        }
        guard let urlText = try scalar("url") else {
            throw ConfigurationError("\(here) needs a url (ws://… or wss://…)")
        }
        guard let url = WebSocketURL(urlText) else {
            throw ConfigurationError(
                "\(here): invalid value \"\(Printable.escaped(urlText, limit: 100))\" for url: expected a ws:// or wss:// URL"
            )
        }
        var target = MonitorTarget(
            name: name, url: url, headers: [], headersFile: nil, subprotocol: nil, pingInterval: nil, pongTimeout: nil,
            command: nil, critical: false, caFile: nil)
        if let node = fields["headers"] {
            guard let headerMapping = node.mapping else {
                throw ConfigurationError("\(here): headers must be a mapping of header names to values")
            }
            for (nameNode, valueNode) in headerMapping {
                guard let headerName = nameNode.scalar?.string, let value = valueNode.scalar?.string else {
                    throw ConfigurationError("\(here): headers must be a mapping of header names to values")
                }
                target.headers.append(try header(headerName, value, in: "\(here), headers"))
            }
        }
        target.headersFile = try parsed("headers_file", ValueParsers.filePath) ?? nil
        if let file = target.headersFile {
            target.headers += try readHeaders(file, for: here)
        }
        if let subprotocol = try scalar("subprotocol") {
            guard subprotocol.utf8.allSatisfy(isTokenByte) else {
                throw ConfigurationError(
                    "\(here): subprotocol \"\(Printable.escaped(subprotocol, limit: 100))\" must be an HTTP token")
            }
            target.subprotocol = subprotocol
        }
        target.pingInterval = try parsed("ping_interval", ValueParsers.duration)
        target.pongTimeout = try parsed("pong_timeout", ValueParsers.duration)
        if target.pongTimeout == .zero {
            throw ConfigurationError("\(here): pong_timeout must be more than 0")
        }
        target.critical = try parsed("critical", ValueParsers.boolean) ?? false
        target.caFile = try parsed("ca_file", ValueParsers.filePath) ?? nil
        if target.caFile != nil && !url.secure {
            throw ConfigurationError("\(here): ca_file is for a wss:// url, and the url is \(url)")
        }
        if let node = fields["command"] {
            target.command = try command(node, in: here)
        }
        return target
    }

    private static func command(_ node: Node, in here: String) throws(ConfigurationError) -> CommandProbe.Rules {
        guard let mapping = node.mapping else {
            throw ConfigurationError("\(here): command must be a mapping (every, message, reply_within)")
        }
        var values: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string, commandKeys.contains(key) else {
                throw ConfigurationError(
                    "\(here): unknown key command.\(keyNode.scalar?.string ?? "?"); keys: "
                        + commandKeys.joined(separator: ", "))
            }
            guard let value = valueNode.scalar?.string, !value.isEmpty else {
                throw ConfigurationError("\(here): command.\(key) must have a single value")
            }
            values[key] = value
        }
        func duration(_ key: String) throws(ConfigurationError) -> Duration {
            guard let text = values[key] else { throw ConfigurationError("\(here): command needs \(key)") }
            guard let value = try? ValueParsers.duration(text), value > .zero else {
                throw ConfigurationError(
                    "\(here): invalid value \"\(Printable.escaped(text, limit: 100))\" for command.\(key): expected a duration above 0 such as 2s"
                )
            }
            return value
        }
        guard let message = values["message"] else { throw ConfigurationError("\(here): command needs message") }
        guard message.contains("{{id}}") else {
            throw ConfigurationError(
                "\(here): command.message must contain {{id}}: the reply is matched by that requestID")
        }
        return CommandProbe.Rules(
            every: try duration("every"), replyWithin: try duration("reply_within"), template: message)
    }

    /// `Name: value` lines; blank lines and lines starting with `#` are skipped. Re-read at
    /// every load, so a reload picks up a rotated secret.
    private static func readHeaders(_ path: String, for here: String) throws(ConfigurationError) -> [Header] {
        let text = try TextFile.read(path: path, what: "headers_file of \(here)", limit: 64 << 10)
        var headers: [Header] = []
        // `\r\n` is one Character in Swift: split on every kind of line end.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ConfigurationError("headers_file \(path) of \(here), line \(number + 1): expected Name: value")
            }
            headers.append(
                try header(
                    String(trimmed[..<colon]), String(trimmed[trimmed.index(after: colon)...].trimmingSpaces),
                    in: "headers_file \(path) of \(here), line \(number + 1)"))
        }
        return headers
    }

    /// Header names the dialer writes itself and a target may not set.
    static let reservedHeaders: Set<String> = [
        "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
        "sec-websocket-extensions", "content-length", "transfer-encoding",
    ]

    private static func header(_ name: String, _ value: String, in place: String) throws(ConfigurationError) -> Header {
        guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
            throw ConfigurationError("\(place): \"\(Printable.escaped(name, limit: 100))\" is not a header name")
        }
        guard !reservedHeaders.contains(name.lowercased()) else {
            throw ConfigurationError(
                "\(place): \(name) is vigild's own to send (use subprotocol for Sec-WebSocket-Protocol)")
        }
        // The value is a secret more often than not: the error names the header, not the value.
        guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            throw ConfigurationError("\(place): the value of \(name) holds a control character")
        }
        return Header(name: name, value: value)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    /// RFC 9110 tchar.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        if (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        {
            return true
        }
        return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}
