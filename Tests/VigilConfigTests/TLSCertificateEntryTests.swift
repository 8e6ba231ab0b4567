import Testing

@testable import VigilConfig

@Suite("TLS settings and tls_certificates in the config file")
struct TLSCertificateEntryTests {
    func load(_ yaml: String, flags: [String: String] = [:]) throws(ConfigurationError) -> ResolvedSettings {
        try SettingsLoader.resolve(
            flags: flags, environment: [:], file: ConfigFile.parse(yaml, path: "/etc/vigil/vigil.yaml"))
    }

    func error(_ yaml: String, flags: [String: String] = [:]) -> String {
        do {
            _ = try load(yaml, flags: flags)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test("a default certificate and entries by name; names lowercased, trailing dots dropped")
    func entries() throws {
        let settings = try load(
            """
            tls_cert_file: /etc/vigil/tls/default.pem
            tls_key_file: /etc/vigil/tls/default.key
            tls_min_version: "1.3"
            tls_certificates:
              - server_names: [Chat.Example.COM., "*.feed.example.com"]
                cert_file: /etc/vigil/tls/chat.pem
                key_file: /etc/vigil/tls/chat.key
              - server_names: admin.example.com
                cert_file: /etc/vigil/tls/admin.pem
                key_file: /etc/vigil/tls/admin.key
            """
        ).settings
        #expect(settings.tls)
        #expect(settings.tlsMinVersion == .tls13)
        #expect(
            settings.tlsCertificates.map(\.serverNames) == [
                ["chat.example.com", "*.feed.example.com"], ["admin.example.com"],
            ])
        #expect(settings.tlsCertificates[1].keyFile == "/etc/vigil/tls/admin.key")
    }

    @Test("matching: exact names in any case, a wildcard for exactly one label")
    func matching() {
        let entry = TLSCertificateEntry(
            serverNames: ["chat.example.com", "*.feed.example.com"], certFile: "/c", keyFile: "/k")
        #expect(entry.matches("chat.example.com"))
        #expect(entry.matches("CHAT.example.com."))
        #expect(entry.matches("eu.feed.example.com"))
        #expect(!entry.matches("feed.example.com"))
        #expect(!entry.matches("a.eu.feed.example.com"))
        #expect(!entry.matches("example.com"))
        #expect(!entry.matches("xchat.example.com"))
    }

    @Test("errors name the entry, the key and the value")
    func errors() {
        let entry = { (body: String) in "tls_certificates:\n  - " + body }
        #expect(
            error(entry("server_names: a.example.com\n    cert_file: /c.pem"))
                == "tls_certificates[0] in config file /etc/vigil/vigil.yaml needs key_file (an absolute path to a PEM file)"
        )
        #expect(
            error(entry("server_names: a.example.com\n    cert_file: c.pem\n    key_file: /k"))
                == "tls_certificates[0] in config file /etc/vigil/vigil.yaml: invalid value \"c.pem\" for cert_file: expected an absolute file path"
        )
        #expect(
            error(entry("server_names: [\"a b\"]\n    cert_file: /c\n    key_file: /k"))
                == "tls_certificates[0] in config file /etc/vigil/vigil.yaml: \"a b\" in server_names is not a host name such as app.example.com or *.example.com"
        )
        #expect(error(entry("server_names: \"*.com\"\n    cert_file: /c\n    key_file: /k")).contains("\"*.com\""))
        #expect(error(entry("server_names: \"a.*.com\"\n    cert_file: /c\n    key_file: /k")).contains("\"a.*.com\""))
        #expect(
            error(entry("server_name: a.example.com\n    cert_file: /c\n    key_file: /k"))
                == "tls_certificates[0] in config file /etc/vigil/vigil.yaml: unknown key server_name; keys: server_names, cert_file, key_file"
        )
        #expect(
            error(
                """
                tls_certificates:
                  - {server_names: a.example.com, cert_file: /a, key_file: /a.key}
                  - {server_names: [b.example.com, A.example.com], cert_file: /b, key_file: /b.key}
                """)
                == "tls_certificates[1] in config file /etc/vigil/vigil.yaml: server name a.example.com is also in tls_certificates[0]; each name picks one certificate"
        )
        #expect(
            error("tls_certificates: /etc/x").hasPrefix(
                "tls_certificates in config file /etc/vigil/vigil.yaml must be a list"))
    }

    @Test("a certificate needs its key, and TLS needs a listener")
    func pairing() {
        #expect(
            error("tls_cert_file: /c.pem")
                == "invalid value \"/c.pem\" for tls_cert_file (config file /etc/vigil/vigil.yaml): needs tls_key_file too: a certificate is served with its private key"
        )
        #expect(error("tls_key_file: /c.key").contains("needs tls_cert_file too"))
        #expect(
            error("listen: none\ntls_cert_file: /c\ntls_key_file: /k")
                == "TLS (tls_cert_file or tls_certificates) is for the WebSocket listener, and listen is none")
        #expect(error("tls_min_version: \"1.1\"").contains("for tls_min_version"))
    }

    @Test("a reload takes the new tls_certificates list as a whole")
    func reload() throws {
        let running = try load("tls_certificates:\n  - {server_names: a.example.com, cert_file: /a, key_file: /a.key}")
        let fresh = try load("tls_certificates:\n  - {server_names: b.example.com, cert_file: /b, key_file: /b.key}")
        let reload = SettingsReload(running: running, fresh: fresh)
        #expect(reload.updated.settings.tlsCertificates.map(\.serverNames) == [["b.example.com"]])
    }
}
