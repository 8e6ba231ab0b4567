import Yams

/// A config file's settings as raw text, keyed as in the file (`ping_interval: 30s`).
///
/// YAML or JSON (JSON is read as YAML, of which it is a subset). A mapping of scalars (lists
/// for the list settings), `targets`, a list of mappings (`MonitorTarget`), and
/// `tls_certificates`, another (`TLSCertificateEntry`), and `routes` (`RouteEntry`): other nesting
/// and empty values are errors naming the key.
public struct ConfigFile: Sendable, Hashable {
    public var path: String
    public var values: [String: String]
    /// The monitor targets, in the file's order.
    public var targets: [MonitorTarget]
    /// The listener's certificates chosen by SNI, in the file's order.
    public var tlsCertificates: [TLSCertificateEntry]
    /// The listener's routes, in the file's order.
    public var routes: [RouteEntry]

    public init(
        path: String, values: [String: String], targets: [MonitorTarget] = [],
        tlsCertificates: [TLSCertificateEntry] = [], routes: [RouteEntry] = []
    ) {
        self.path = path
        self.values = values
        self.targets = targets
        self.tlsCertificates = tlsCertificates
        self.routes = routes
    }

    /// Reads and parses the file at `path`. Without `targets`, the `targets` list is skipped
    /// (a client that needs only the status settings need not read the targets' secrets).
    public static func read(path: String, targets readTargets: Bool = true) throws(ConfigurationError) -> ConfigFile {
        try parse(TextFile.read(path: path, what: "config file"), path: path, targets: readTargets)
    }

    /// Keys whose value may be written as a YAML list (the loader reads it as a comma-separated one).
    static let listKeys = Set(SettingCatalog.all.filter(\.list).map(\.key))

    public static func parse(_ text: String, path: String, targets readTargets: Bool = true) throws(ConfigurationError)
        -> ConfigFile
    {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError("config file \(path) is not valid YAML or JSON: \(error)")
        }
        guard let root else { return ConfigFile(path: path, values: [:]) }  // empty file
        guard let mapping = root.mapping else {
            throw ConfigurationError("config file \(path) must hold a mapping of keys to values (key: value)")
        }
        var values: [String: String] = [:]
        var targets: [MonitorTarget]?
        var certificates: [TLSCertificateEntry]?
        var routes: [RouteEntry]?
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw ConfigurationError("config file \(path) has a key that is not a plain name")
            }
            guard values[key] == nil, key != MonitorTarget.configKey || targets == nil,
                key != TLSCertificateEntry.configKey || certificates == nil,
                key != RouteEntry.configKey || routes == nil
            else {
                throw ConfigurationError("key \(key) appears twice in config file \(path)")
            }
            if key == TLSCertificateEntry.configKey {
                certificates = try TLSCertificateEntry.parseList(valueNode, path: path)
                continue
            }
            if key == RouteEntry.configKey {
                routes = try RouteEntry.parseList(valueNode, path: path)
                continue
            }
            if key == MonitorTarget.configKey {
                targets = readTargets ? try MonitorTarget.parseList(valueNode, path: path) : []
                continue
            }
            let text: String
            if let scalar = valueNode.scalar {
                text = scalar.string
            } else if let items = valueNode.sequence, Self.listKeys.contains(key) {
                // A list of plain values reads as the same values joined by commas.
                let strings = items.compactMap { $0.scalar?.string }
                guard strings.count == items.count, !strings.contains(where: { $0.isEmpty || $0.contains(",") }) else {
                    throw ConfigurationError("key \(key) in config file \(path) must be a list of plain values")
                }
                text = strings.joined(separator: ",")
            } else {
                throw ConfigurationError(
                    "key \(key) in config file \(path) must have a single value, not a list or mapping")
            }
            guard !text.isEmpty else {
                throw ConfigurationError("key \(key) in config file \(path) has no value")
            }
            values[key] = text
        }
        return ConfigFile(
            path: path, values: values, targets: targets ?? [], tlsCertificates: certificates ?? [],
            routes: routes ?? [])
    }
}

extension ConfigFile {
    /// A list entry's keys and values (a target, a certificate, a route): an error naming
    /// `place` when it is not a mapping (`shape` says what one looks like) or a key is not a
    /// plain name or appears twice.
    static func fields(of node: Node, in place: String, shape: String) throws(ConfigurationError) -> [String: Node] {
        guard let mapping = node.mapping else {
            throw ConfigurationError("\(place) must be a mapping (\(shape))")
        }
        var fields: [String: Node] = [:]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw ConfigurationError("\(place) has a key that is not a plain name")
            }
            guard fields[key] == nil else { throw ConfigurationError("\(place): key \(key) appears twice") }
            fields[key] = valueNode
        }
        return fields
    }
}
