import VigilText
import Yams

/// One certificate of the WebSocket listener's TLS, chosen by the name a client asks for
/// (SNI): an entry of the config file's `tls_certificates` list. `tls_cert_file` and
/// `tls_key_file` are the default certificate, for clients that send no name or one no entry
/// lists; without them the list's first entry is the default (as nginx's first server block).
public struct TLSCertificateEntry: Sendable, Hashable {
    /// Lowercased, without a trailing dot: `app.example.com`, or `*.example.com`, which matches
    /// exactly one label in front of `example.com`.
    public var serverNames: [String]
    /// PEM: the certificate first, then its intermediates (the full chain).
    public var certFile: String
    /// PEM: the certificate's private key.
    public var keyFile: String

    public init(serverNames: [String], certFile: String, keyFile: String) {
        self.serverNames = serverNames
        self.certFile = certFile
        self.keyFile = keyFile
    }

    /// The config file key of the list.
    public static let configKey = "tls_certificates"
    static let keys = ["server_names", "cert_file", "key_file"]

    /// Whether `name` (a client's SNI, any case, maybe with a trailing dot) is one of this
    /// entry's names.
    public func matches(_ name: String) -> Bool {
        serverNames.contains { ServerNamePattern.matches($0, name) }
    }

    // MARK: - Parsing

    /// The `tls_certificates:` list: each entry a mapping with the keys above.
    static func parseList(_ node: Node, path: String) throws(ConfigurationError) -> [TLSCertificateEntry] {
        guard let items = node.sequence else {
            throw ConfigurationError(
                "tls_certificates in config file \(path) must be a list of certificates (- server_names: …, cert_file: …, key_file: …)"
            )
        }
        var entries: [TLSCertificateEntry] = []
        for (index, item) in items.enumerated() {
            let place = "tls_certificates[\(index)] in config file \(path)"
            let entry = try parse(item, where: place)
            for name in entry.serverNames {
                if let earlier = entries.firstIndex(where: { $0.serverNames.contains(name) }) {
                    throw ConfigurationError(
                        "\(place): server name \(name) is also in tls_certificates[\(earlier)]; each name picks one certificate"
                    )
                }
            }
            entries.append(entry)
        }
        return entries
    }

    static func parse(_ node: Node, where place: String) throws(ConfigurationError) -> TLSCertificateEntry {
        let fields = try ConfigFile.fields(
            of: node, in: place, shape: "server_names: …, cert_file: …, key_file: …")
        if let unknown = fields.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ConfigurationError("\(place): unknown key \(unknown); keys: " + keys.joined(separator: ", "))
        }
        func file(_ key: String) throws(ConfigurationError) -> String {
            guard let text = fields[key]?.scalar?.string, !text.isEmpty else {
                throw ConfigurationError("\(place) needs \(key) (an absolute path to a PEM file)")
            }
            guard let path = try? ValueParsers.filePath(text) else {
                throw ConfigurationError(
                    "\(place): invalid value \"\(Printable.escaped(text, limit: 100))\" for \(key): expected an absolute file path"
                )
            }
            return path
        }
        let namesNode = fields["server_names"]
        let texts: [String]
        if let scalar = namesNode?.scalar?.string {
            texts = [scalar]
        } else if let items = namesNode?.sequence {
            texts = items.compactMap { $0.scalar?.string }
            guard texts.count == items.count else {
                throw ConfigurationError("\(place): server_names must be a list of host names")
            }
        } else {
            throw ConfigurationError(
                "\(place) needs server_names (a host name such as app.example.com, *.example.com, or a list of them)")
        }
        var names: [String] = []
        for text in texts {
            guard let name = ServerNamePattern.parse(text) else {
                throw ConfigurationError(
                    "\(place): \"\(Printable.escaped(text, limit: 100))\" in server_names is not a host name such as app.example.com or *.example.com"
                )
            }
            if !names.contains(name) { names.append(name) }
        }
        guard !names.isEmpty else { throw ConfigurationError("\(place): server_names is empty") }
        return TLSCertificateEntry(serverNames: names, certFile: try file("cert_file"), keyFile: try file("key_file"))
    }
}

/// The oldest TLS version the WebSocket listener accepts (`tls_min_version`).
public enum TLSMinimumVersion: String, Sendable, Hashable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"
}
