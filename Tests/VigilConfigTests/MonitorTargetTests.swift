import Testing

@testable import VigilConfig

@Suite("Monitor targets in the config file")
struct MonitorTargetTests {
    func load(_ yaml: String) throws(ConfigurationError) -> ResolvedSettings {
        try SettingsLoader.resolve(
            flags: [:], environment: [:], file: ConfigFile.parse(yaml, path: "/etc/vigil/vigil.yaml"))
    }

    func error(_ yaml: String) -> String {
        do {
            _ = try load(yaml)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test("a full target, with the issue's example keys")
    func full() throws {
        let settings = try load(
            """
            ping_interval: 20s
            targets:
              - name: market-feed
                url: wss://feed.example.com/ws
                headers: {Authorization: "Bearer abc"}
                subprotocol: v2.feed
                ping_interval: 15s
                pong_timeout: 5s
                command:
                  every: 2s
                  message: '{"requestID": {{id}}, "command": "status"}'
                  reply_within: 3s
                critical: true
              - name: plain
                url: ws://127.0.0.1:3000/
            """
        ).settings
        #expect(settings.targets.map(\.name) == ["market-feed", "plain"])
        let feed = settings.targets[0]
        #expect(feed.url.secure && feed.url.host == "feed.example.com" && feed.critical)
        #expect(feed.headers == [.init(name: "Authorization", value: "Bearer abc")])
        #expect(
            feed.command
                == .init(
                    every: .seconds(2), replyWithin: .seconds(3),
                    template: #"{"requestID": {{id}}, "command": "status"}"#))
        #expect(feed.supervisionPolicy(global: settings.supervisionPolicy).pingInterval == .seconds(15))
        #expect(settings.targets[1].supervisionPolicy(global: settings.supervisionPolicy).pingInterval == .seconds(20))
    }

    @Test(
        "errors name the target and the key",
        arguments: [
            (
                "targets:\n  - name: a\n    url: ws://x/\n    ping_intervall: 5s\n",
                "target a (targets[0] in config file /etc/vigil/vigil.yaml): unknown key ping_intervall; keys: name, url,"
            ),
            ("targets:\n  - url: ws://x/\n", "targets[0] in config file /etc/vigil/vigil.yaml needs a name"),
            ("targets:\n  - name: Feed\n    url: ws://x/\n", "name \"Feed\" must be 1 to 64 of a-z, 0-9, _ and -"),
            (
                "targets:\n  - name: a\n    url: http://x/\n",
                "target a (targets[0] in config file /etc/vigil/vigil.yaml): invalid value \"http://x/\" for url"
            ),
            ("targets:\n  - name: a\n    url: ws://x/\n  - name: a\n    url: ws://y/\n", "target a appears twice"),
            (
                "targets:\n  - name: a\n    url: ws://x/\n    pong_timeout: 5\n",
                "invalid value \"5\" for pong_timeout: expected a duration"
            ),
            (
                "targets:\n  - name: a\n    url: ws://x/\n    command: {every: 2s, message: status, reply_within: 1s}\n",
                "command.message must contain {{id}}"
            ),
            (
                "targets:\n  - name: a\n    url: ws://x/\n    command: {every: 2s, message: '{{id}}', reply_within: 1s, retries: 3}\n",
                "unknown key command.retries"
            ),
            ("targets:\n  - name: a\n    url: ws://x/\n    headers: {Host: evil}\n", "Host is vigild's own to send"),
            ("targets:\n  - name: a\n    url: ws://x/\n    ca_file: /etc/ca.pem\n", "ca_file is for a wss:// url"),
            (
                "targets:\n  - name: a\n    url: ws://x/\n    headers_file: /nonexistent/h\n",
                "cannot read headers_file of target a"
            ),
            ("targets: {name: a}\n", "targets in config file /etc/vigil/vigil.yaml must be a list of targets"),
        ])
    func errors(yaml: String, expected: String) {
        let message = error(yaml)
        #expect(message.contains(expected), "\(message)")
    }

    @Test("headers_file: Name: value lines, comments skipped; the value never appears in an error")
    func headersFile() throws {
        let path = "/tmp/vigil-headers-\(UInt32.random(in: 0...UInt32.max))"
        let file = fopen(path, "w")!
        fputs("# secrets\nAuthorization: Bearer s3cret\r\n\nX-Tenant:  blue \n", file)
        fclose(file)
        defer { remove(path) }
        let settings = try load("targets:\n  - name: a\n    url: ws://x/\n    headers_file: \(path)\n").settings
        #expect(
            settings.targets[0].headers == [
                .init(name: "Authorization", value: "Bearer s3cret"), .init(name: "X-Tenant", value: "blue"),
            ])
    }

    @Test("listen: none; a proxy needs a listener")
    func listenNone() throws {
        #expect(try load("listen: none\n").settings.listen == nil)
        #expect(
            error("listen: none\nmode: proxy\nupstream: ws://127.0.0.1:3000/\n").contains(
                "must be an address in proxy mode"))
    }
}

#if canImport(Glibc)
    import Glibc
#endif
