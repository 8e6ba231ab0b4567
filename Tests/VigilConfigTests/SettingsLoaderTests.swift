import Foundation
import Testing
import VigilSupervisor

@testable import VigilConfig

@Suite("Settings: defaults, precedence, errors")
struct SettingsLoaderTests {
    @Test("the embedded defaults are the documented ones")
    func defaults() throws {
        let s = VigilSettings.defaults
        #expect(s.listen == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(s.path == "/ws")
        #expect(s.mode == .echo)
        #expect(s.statusListen == ListenAddress(host: "127.0.0.1", port: 9090))
        #expect(s.pingInterval == .seconds(30))
        #expect(s.pongTimeout == .seconds(10))
        #expect(s.readDeadline == .zero)
        #expect(s.handshakeTimeout == .seconds(10))
        #expect(s.closeTimeout == .seconds(5))
        #expect(s.writeTimeout == .seconds(10))
        #expect(s.maxBacklog == 1 << 20)
        #expect(s.maxFrame == 64 << 10)
        #expect(s.maxMessage == 1 << 20)
        #expect(s.maxConnections == 10000)
        #expect(s.closeHistory == 10000)
        #expect(s.logFormat == .text && s.logLevel == .info)
    }

    @Test("the slow-consumer rules: write timeout over max_backlog, ceiling max_backlog + max_message")
    func slowConsumerPolicy() throws {
        let policy = try SettingsLoader.resolve(
            flags: ["max_backlog": "256KiB", "max_message": "16MiB", "write_timeout": "2s"], environment: [:], file: nil
        ).settings.supervisionPolicy
        #expect(policy.maxBacklog == 256 << 10)
        #expect(policy.backlogCeiling == (256 << 10) + (16 << 20))
        #expect(policy.writeTimeout == .seconds(2))
    }

    @Test("command-line settings come from the catalog: --key value, --key=value, the last one wins")
    func commandLine() throws {
        let flags = try SettingsLoader.flagValues([
            "--ping-interval", "5s", "--max-frame=16KiB", "--mode", "command", "--ping-interval", "6s",
        ])
        #expect(flags == ["ping_interval": "6s", "max_frame": "16KiB", "mode": "command"])
        #expect(try SettingsLoader.flagValues([]) == [:])
        for definition in SettingCatalog.all {
            #expect(
                try SettingsLoader.flagValues([definition.flag, definition.defaultText]) == [
                    definition.key: definition.defaultText
                ])
        }
    }

    @Test(
        "a command line that is not settings is an error naming what was wrong",
        arguments: [
            (["--ping-intervall", "5s"], "unknown option --ping-intervall; settings: --listen, --path"),
            (["--ping-interval"], "--ping-interval needs a value (default: 30s)"),
            (["5s"], "unexpected argument \"5s\"; settings are given as --name value"),
        ])
    func commandLineErrors(arguments: [String], message: String) {
        #expect(throws: ConfigurationError.self) { try SettingsLoader.flagValues(arguments) }
        do {
            _ = try SettingsLoader.flagValues(arguments)
        } catch {
            #expect(error.message.hasPrefix(message), "\(error.message)")
        }
    }

    @Test("proxy mode: the upstream URL, inherited heartbeat, the failure code")
    func proxy() throws {
        let settings = try SettingsLoader.resolve(
            flags: ["mode": "proxy", "upstream": "wss://feed.example.com/socket?v=2", "upstream_pong_timeout": "3s"],
            environment: [:], file: nil
        ).settings
        #expect(
            settings.upstream
                == WebSocketURL(secure: true, host: "feed.example.com", port: 443, path: "/socket", query: "v=2"))
        #expect(settings.upstreamSupervisionPolicy.pingInterval == .seconds(30))
        #expect(settings.upstreamSupervisionPolicy.pongTimeout == .seconds(3))
        #expect(settings.upstreamFailureCode.code == 1014)
        #expect {
            try SettingsLoader.resolve(flags: ["mode": "proxy"], environment: [:], file: nil)
        } throws: { error in
            (error as? ConfigurationError)?.message
                == "invalid value \"none\" for upstream (default): is required in proxy mode (mode proxy): the ws:// or wss:// URL to relay to"
        }
    }

    @Test(
        "WebSocket URLs: schemes, default ports, IPv6, paths and queries",
        arguments: [
            ("ws://127.0.0.1:3000/socket", WebSocketURL(secure: false, host: "127.0.0.1", port: 3000, path: "/socket")),
            ("ws://backend", WebSocketURL(secure: false, host: "backend", port: 80, hasPath: false)),
            ("ws://backend/", WebSocketURL(secure: false, host: "backend", port: 80)),
            ("wss://[::1]/x?a=1&b", WebSocketURL(secure: true, host: "::1", port: 443, path: "/x", query: "a=1&b")),
            (
                "wss://h:8443?q",
                WebSocketURL(secure: true, host: "h", port: 8443, path: "/", query: "q", hasPath: false)
            ),
        ] as [(String, WebSocketURL)])
    func urls(text: String, url: WebSocketURL) {
        #expect(WebSocketURL(text) == url)
        #expect(WebSocketURL(text)?.description == text.replacingOccurrences(of: ":443", with: ""), "as written")
    }

    @Test(
        "not WebSocket URLs",
        arguments: [
            "http://h/", "ws://", "ws://h:0/", "ws://h:99999/", "ws://user@h/", "ws://h/#f", "ws://h /", "ws://[::1/",
        ])
    func badURLs(text: String) {
        #expect(WebSocketURL(text) == nil)
    }

    @Test("the application-level heartbeat: off by default, for client connections only, its messages checked")
    func appHeartbeat() throws {
        #expect(VigilSettings.defaults.supervisionPolicy.appHeartbeat == nil)
        let on = try SettingsLoader.resolve(flags: ["app_ping_interval": "20s"], environment: [:], file: nil).settings
        #expect(
            on.supervisionPolicy.appHeartbeat
                == AppHeartbeat(
                    interval: .seconds(20), timeout: .seconds(10), ping: #"{"type":"ping"}"#, pong: #"{"type":"pong"}"#)
        )
        #expect(on.upstreamSupervisionPolicy.appHeartbeat == nil, "not sent to an upstream")
        #expect(throws: ConfigurationError.self) {
            try SettingsLoader.resolve(
                flags: ["app_ping_interval": "20s", "app_pong_timeout": "0"], environment: [:], file: nil)
        }
        #expect(throws: ConfigurationError.self) {
            try SettingsLoader.resolve(
                flags: ["app_ping_interval": "20s", "app_pong_message": #"{"type":"ping"}"#], environment: [:],
                file: nil)
        }
        #expect(throws: ConfigurationError.self, "one frame of max_frame") {
            try SettingsLoader.resolve(
                flags: ["app_ping_message": String(repeating: "x", count: 200), "max_frame": "125"], environment: [:],
                file: nil)
        }
        for bad in ["", "a\nb", String(repeating: "x", count: 1025)] {
            #expect(throws: ConfigurationError.self) {
                try SettingsLoader.resolve(flags: ["app_ping_message": bad], environment: [:], file: nil)
            }
        }
    }

    @Test("a reload takes exactly the reloadable settings")
    func reloadable() throws {
        #expect(
            SettingCatalog.all.filter(\.reloadable).map(\.key) == [
                "status_token_file", "status_hosts", "ping_interval", "pong_timeout", "read_deadline",
                "app_ping_interval", "app_pong_timeout",
                "app_ping_message", "app_pong_message", "close_timeout", "write_timeout", "allowed_origins",
                "require_origin", "trusted_proxies", "tls_cert_file", "tls_key_file", "tls_min_version", "upstream",
                "upstream_path",
                "upstream_connect_timeout", "upstream_try_timeout", "upstream_ca_file", "upstream_ping_interval",
                "upstream_pong_timeout",
                "upstream_failure_code", "reconnect_max", "reconnect_reset_after", "drain_window",
            ])
        var running = try SettingsLoader.resolve(flags: [:], environment: [:], file: nil)
        let fresh = try SettingsLoader.resolve(
            flags: ["write_timeout": "3s", "max_frame": "1KiB"], environment: [:], file: nil)
        for definition in SettingCatalog.all where definition.reloadable { running.adopt(definition, from: fresh) }
        #expect(running.settings.writeTimeout == .seconds(3))
        #expect(running.sources["write_timeout"] == .flag("--write-timeout"))
        #expect(running.settings.maxFrame == 64 << 10)
    }

    @Test("flags beat environment beat file beat defaults, and each source is reported")
    func precedence() throws {
        let file = ConfigFile(
            path: "/etc/vigil/vigil.yaml", values: ["ping_interval": "1m", "pong_timeout": "3s", "max_frame": "16KiB"])
        let resolved = try SettingsLoader.resolve(
            flags: ["ping_interval": "500ms"],
            environment: ["VIGIL_PING_INTERVAL": "2s", "VIGIL_PONG_TIMEOUT": "4s", "HOME": "/root"],
            file: file)
        #expect(resolved.settings.pingInterval == .milliseconds(500))
        #expect(resolved.settings.pongTimeout == .seconds(4))
        #expect(resolved.settings.maxFrame == 16 << 10)
        #expect(resolved.sources["ping_interval"] == .flag("--ping-interval"))
        #expect(resolved.sources["pong_timeout"] == .environment("VIGIL_PONG_TIMEOUT"))
        #expect(resolved.sources["max_frame"] == .file("/etc/vigil/vigil.yaml"))
        #expect(resolved.sources["listen"] == .defaultValue)
        let report = resolved.report()
        let lines = report.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        #expect(lines.contains("ping_interval 500ms # flag --ping-interval"))
        #expect(lines.contains("max_frame 16KiB # config file /etc/vigil/vigil.yaml"))
        #expect(report.split(separator: "\n").count == SettingCatalog.all.count)
    }

    @Test(
        "durations, sizes and addresses in their accepted forms",
        arguments: [
            ("ping_interval", "1.5s"), ("ping_interval", "250ms"), ("ping_interval", "2m"), ("ping_interval", "0"),
            ("max_frame", "65536"), ("max_frame", "64KiB"), ("max_message", "16MiB"), ("max_backlog", "1GiB"),
            ("listen", "0.0.0.0:0"), ("listen", "[::1]:8080"), ("listen", "localhost:80"), ("path", "/a/b-c_d"),
        ])
    func accepted(key: String, value: String) throws {
        let resolved = try SettingsLoader.resolve(flags: [key: value], environment: [:], file: nil)
        #expect(resolved.sources[key] == .flag("--" + key.replacingOccurrences(of: "_", with: "-")))
    }

    @Test(
        "a bad value names the key, the value and where it came from",
        arguments: [
            ("ping_interval", "30", "expected a duration such as 500ms, 30s or 2m (or 0)"),
            ("ping_interval", "30x", "expected a duration"),
            ("ping_interval", "-5s", "expected a duration"),
            ("ping_interval", "1441m", "at most a day (1440m)"),
            ("ping_interval", ".5s", "expected a duration"),
            ("max_frame", "64KB", "expected a size in bytes, or with KiB, MiB or GiB"),
            ("max_frame", "99999999999GiB", "at most 4GiB"),
            ("max_frame", "100", "at least 125 bytes"),
            ("max_connections", "0", "between 1 and 1000000"),
            ("max_connections", "ten", "a whole number"),
            ("listen", "8080", "HOST:PORT"),
            ("listen", "localhost:65536", "HOST:PORT"),
            ("listen", "::1:8080", "HOST:PORT"),
            ("path", "ws", "an absolute URL path"),
            ("path", "/ws?x=1", "an absolute URL path"),
            ("mode", "relay", "one of echo, command, proxy"),
            ("upstream", "ws://127.0.0.1:3000/", "is used only in proxy mode, and mode is echo"),
            ("upstream", "http://127.0.0.1:3000/", "a ws:// or wss:// URL"),
            ("upstream_ping_interval", "soon", "a duration such as 500ms, 30s or 2m, 0, or inherit"),
            ("upstream_failure_code", "1006", "one of 1014, 1011, 1001"),
            ("close_timeout", "0", "must be more than 0"),
        ])
    func rejected(key: String, value: String, expected: String) {
        let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
        #expect {
            try SettingsLoader.resolve(flags: [key: value], environment: [:], file: nil)
        } throws: { error in
            let message = (error as? ConfigurationError)?.message ?? ""
            return message.contains("\"\(value)\"") && message.contains(key) && message.contains("flag \(flag)")
                && message.contains(expected)
        }
    }

    @Test("errors from the environment and the file name their source")
    func sourcesInErrors() {
        #expect(
            throws: ConfigurationError(
                "invalid value \"fast\" for pong_timeout (environment VIGIL_PONG_TIMEOUT): expected a duration such as 500ms, 30s or 2m (or 0)"
            )
        ) {
            try SettingsLoader.resolve(flags: [:], environment: ["VIGIL_PONG_TIMEOUT": "fast"], file: nil)
        }
        #expect(
            throws: ConfigurationError(
                "invalid value \"0\" for pong_timeout (config file f.yaml): must be more than 0 while pings are enabled (ping_interval 30s)"
            )
        ) {
            try SettingsLoader.resolve(
                flags: [:], environment: [:], file: ConfigFile(path: "f.yaml", values: ["pong_timeout": "0"]))
        }
    }

    @Test("P = 0 allows T = 0")
    func pingsOff() throws {
        let s = try SettingsLoader.resolve(
            flags: ["ping_interval": "0", "pong_timeout": "0"], environment: [:], file: nil
        ).settings
        #expect(!s.supervisionPolicy.pingsEnabled)
    }

    @Test("unknown keys are start-up errors, wherever they come from")
    func unknownKeys() {
        #expect {
            try SettingsLoader.resolve(flags: [:], environment: ["VIGIL_PING_INTERVALL": "5s"], file: nil)
        } throws: { error in
            "\(error)".hasPrefix("unknown environment variable VIGIL_PING_INTERVALL=\"5s\"")
        }
        #expect {
            try SettingsLoader.resolve(
                flags: [:], environment: [:], file: ConfigFile(path: "v.yaml", values: ["ping_intervall": "5s"]))
        } throws: { error in
            "\(error)".hasPrefix("unknown key ping_intervall (value \"5s\") in config file v.yaml")
        }
    }
}

@Suite("Config files")
struct ConfigFileTests {
    @Test("YAML and JSON with the same keys read the same")
    func yamlAndJSON() throws {
        let yaml = try ConfigFile.parse(
            "# comment\nping_interval: 5s\nmax_connections: 20\nlisten: \"[::1]:8080\"\n", path: "a.yaml")
        let json = try ConfigFile.parse(
            #"{"ping_interval": "5s", "max_connections": 20, "listen": "[::1]:8080"}"#, path: "a.json")
        #expect(yaml.values == json.values)
        #expect(yaml.values == ["ping_interval": "5s", "max_connections": "20", "listen": "[::1]:8080"])
    }

    @Test("an empty file is no settings")
    func empty() throws {
        #expect(try ConfigFile.parse("", path: "e.yaml").values.isEmpty)
    }

    @Test(
        "malformed files are errors naming the file and the key",
        arguments: [
            ("- a\n- b\n", "must hold a mapping"),
            ("ping_interval: [1, 2]\n", "key ping_interval in config file bad.yaml must have a single value"),
            ("limits:\n  max_frame: 1\n", "key limits in config file bad.yaml must have a single value"),
            ("ping_interval:\n", "key ping_interval in config file bad.yaml has no value"),
            ("{\"ping_interval\": \"5s\"", "not valid YAML or JSON"),
            ("a: 1\na: 2\n", "bad.yaml"),
        ])
    func malformed(text: String, expected: String) {
        #expect {
            try ConfigFile.parse(text, path: "bad.yaml")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test("reading a file: missing files are named with the system's reason")
    func reading() throws {
        #expect(
            throws: ConfigurationError("cannot read config file /nonexistent/vigil.yaml: No such file or directory")
        ) {
            try ConfigFile.read(path: "/nonexistent/vigil.yaml")
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-config-\(getpid()).yaml").path
        try "ping_interval: 2s\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let resolved = try SettingsLoader.load(flags: [:], environment: ["VIGIL_CONFIG": path], configPath: nil)
        #expect(resolved.settings.pingInterval == .seconds(2))
        #expect(resolved.sources["ping_interval"] == .file(path))
    }
}

@Suite("Settings of the status API and the accept limits")
struct StatusSettingsTests {
    func resolve(_ flags: [String: String]) throws -> VigilSettings {
        try SettingsLoader.resolve(flags: flags, environment: [:], file: nil).settings
    }

    @Test("a status_listen anyone can reach needs a token or status_insecure")
    func exposure() throws {
        #expect(throws: ConfigurationError.self) { try resolve(["status_listen": "0.0.0.0:9090"]) }
        #expect(throws: ConfigurationError.self) { try resolve(["status_listen": "status.example.com:9090"]) }
        #expect(try resolve(["status_listen": "0.0.0.0:9090", "status_insecure": "true"]).statusInsecure)
        #expect(
            try resolve(["status_listen": "[::]:9090", "status_token_file": "/etc/vigil/token"]).statusTokenFile
                == "/etc/vigil/token")
        for loopback in ["127.0.0.1:9090", "127.8.9.10:1", "[::1]:9090", "localhost:9090"] {
            #expect(throws: Never.self) { try resolve(["status_listen": loopback]) }
        }
        do {
            _ = try resolve(["status_listen": "0.0.0.0:9090"])
        } catch {
            #expect("\(error)".contains("status_token_file") && "\(error)".contains("status_insecure: true"))
        }
    }

    @Test("socket mode, owner and group; host names; the limits' ranges")
    func values() throws {
        #expect(try resolve([:]).statusSocketMode == 0o660)
        #expect(try resolve(["status_socket_mode": "0600"]).statusSocketMode == 0o600)
        #expect(try resolve(["status_socket_mode": "660"]).statusSocketMode == 0o660)
        for bad in ["0400", "0888", "1777", "rw", "07777"] {
            #expect(throws: ConfigurationError.self) { try resolve(["status_socket_mode": bad]) }
        }
        #expect(try resolve(["status_socket_group": "www-data"]).statusSocketGroup == "www-data")
        #expect(throws: ConfigurationError.self) { try resolve(["status_socket_owner": "a b"]) }
        #expect(
            try resolve(["status_hosts": "Status.Example.com, vigil.internal"]).statusHosts == [
                "status.example.com", "vigil.internal",
            ])
        #expect(try resolve([:]).statusHosts == [])
        for bad in ["-x.example", "a..b", "under_score.example", "x,", "*.example.com"] {
            #expect(throws: ConfigurationError.self) { try resolve(["status_hosts": bad]) }
        }
        #expect(try resolve([:]).maxPendingHandshakes == 1024)
        #expect(try resolve([:]).maxConnectionsPerIP == 0)
        #expect(throws: ConfigurationError.self) { try resolve(["max_pending_handshakes": "0"]) }
        #expect(throws: ConfigurationError.self) { try resolve(["status_max_connections": "0"]) }
        #expect(throws: ConfigurationError.self) { try resolve(["status_request_timeout": "0"]) }
    }

    @Test("status_hosts may be a YAML list in the config file")
    func hostList() throws {
        let file = try ConfigFile.parse("status_hosts:\n  - a.example\n  - b.example\n", path: "/etc/vigil/vigil.yaml")
        #expect(
            try SettingsLoader.resolve(flags: [:], environment: [:], file: file).settings.statusHosts == [
                "a.example", "b.example",
            ])
    }
}
