import Testing

@testable import VigilConfig

@Suite("routes: the listener's routes and upstream pools in the config file")
struct RouteSettingsTests {
    func load(_ yaml: String, flags: [String: String] = [:]) throws -> VigilSettings {
        try SettingsLoader.resolve(
            flags: flags, environment: [:], file: ConfigFile.parse(yaml, path: "/etc/vigil/vigil.yaml")
        ).settings
    }

    func error(_ yaml: String, flags: [String: String] = [:]) -> String {
        do {
            _ = try load(yaml, flags: flags)
            return "no error"
        } catch {
            return (error as? ConfigurationError)?.message ?? "\(error)"
        }
    }

    @Test("names, paths, pools, members and overrides as written; defaults filled in")
    func parsed() throws {
        let settings = try load(
            """
            upstream_try_timeout: 2s
            routes:
              - name: chat
                path: /chat/
                upstream: [ws://10.0.0.5:3000, ws://10.0.0.6:3000]
                balance: least_connections
              - path: /feed
                host: [Feed.Example.com., "*.example.org"]
                upstream:
                  - {url: "wss://10.0.0.7:4000/stream", name: feed-a}
                  - {url: "wss://10.0.0.8:4000/stream", drain: true}
                upstream_pong_timeout: 5s
                allowed_origins: [https://app.example.com/, https://*.example.com]
              - path: /echo
                mode: echo
            """)
        let routes = settings.routes
        #expect(routes.map(\.name) == ["chat", "/feed", "/echo"])
        #expect(routes.map(\.path) == ["/chat", "/feed", "/echo"], "a trailing / is dropped")
        #expect(routes.map(\.mode) == [.proxy, .proxy, .echo])
        #expect(routes[0].pool.map(\.name) == ["chat-1", "chat-2"])
        #expect(routes[0].pool.map(\.url.description) == ["ws://10.0.0.5:3000", "ws://10.0.0.6:3000"])
        #expect(routes[0].balance == .leastConnections && routes[1].balance == .roundRobin)
        #expect(routes[1].hosts == ["feed.example.com", "*.example.org"])
        #expect(routes[1].pool.map(\.name) == ["feed-a", "/feed-2"])
        #expect(routes[1].pool.map(\.drain) == [false, true])
        let feed = routes[1].settings(over: settings)
        #expect(feed.upstreamPongTimeout == .seconds(5) && feed.upstreamTryTimeout == .seconds(2))
        #expect(feed.allowedOrigins?.map(\.description) == ["https://app.example.com", "https://*.example.com"])
        #expect(routes[0].settings(over: settings).upstreamPongTimeout == nil, "the top-level value")
        #expect(settings.routeTable == routes)
    }

    @Test("without routes, the single route of mode, path and upstream")
    func singleRoute() throws {
        let echo = try SettingsLoader.resolve(flags: [:], environment: [:], file: nil).settings.routeTable
        #expect(echo == [RouteEntry(name: "/ws", path: "/ws", exact: true, mode: .echo)])
        let proxy = try SettingsLoader.resolve(
            flags: ["mode": "proxy", "upstream": "ws://b:3000/s", "upstream_path": "fixed"], environment: [:],
            file: nil
        ).settings.routeTable
        #expect(proxy.count == 1 && proxy[0].path == "/" && proxy[0].target == .fixed)
        #expect(proxy[0].pool == [PoolMember(name: "upstream", url: WebSocketURL("ws://b:3000/s")!)])
    }

    @Test("errors name the route, the key and the value")
    func errors() {
        #expect(
            error("routes:\n  - path: /chat\n    upstream: ws://b\n", flags: ["upstream": "ws://c"]).hasPrefix(
                "upstream (flag --upstream) describes the single route, and config file /etc/vigil/vigil.yaml lists routes"
            ))
        #expect(error("mode: proxy\nroutes:\n  - {path: /, mode: echo}\n").hasPrefix("mode (config file"))
        #expect(
            error("routes:\n  - {path: /a, mode: echo}\n  - {name: /a, path: /b, mode: echo}\n")
                == "routes[1] in config file /etc/vigil/vigil.yaml: name /a is also routes[0]'s; names must be unique (a route's name defaults to its path)"
        )
        #expect(
            error("routes:\n  - {path: /a, mode: echo}\n  - {name: b, path: /a/, mode: command}\n")
                == "routes[1] in config file /etc/vigil/vigil.yaml: path /a is also routes[0]'s; each request must have one route"
        )
        #expect(
            error("routes:\n  - {path: chat, mode: echo}\n")
                == "routes[0] in config file /etc/vigil/vigil.yaml: invalid value \"chat\" for path: expected an absolute URL path such as /chat (printable ASCII, no ? or #)"
        )
        #expect(
            error("routes:\n  - {path: /a}\n")
                == "route /a (routes[0] in config file /etc/vigil/vigil.yaml) needs upstream (a proxy route) or mode: echo or command"
        )
        #expect(
            error("routes:\n  - {path: /a, upstream: http://b}\n")
                == "route /a (routes[0] in config file /etc/vigil/vigil.yaml), upstream[0]: invalid value \"http://b\" for url: expected a ws:// or wss:// URL"
        )
        #expect(
            error("routes:\n  - {path: /a, upstream: ws://b, balance: random}\n")
                == "route /a (routes[0] in config file /etc/vigil/vigil.yaml): invalid value \"random\" for balance: expected round_robin or least_connections"
        )
        #expect(
            error("routes:\n  - {path: /a, upstream: ws://b, upstream_path: fixed}\n").contains(
                "unknown key upstream_path (a route replaces its path prefix by the upstream URL's path")
        )
        #expect(error("routes:\n  - {path: /a, upstream: ws://b, max_frame: 1KiB}\n").contains("unknown key max_frame"))
        #expect(
            error("routes:\n  - {path: /a, upstream: [{url: ws://b, name: x}, {url: ws://c, name: x}]}\n").hasSuffix(
                "upstream[1]: name x appears twice in the pool; member names must be unique"))
        #expect(
            error("routes:\n  - {path: /a, upstream: ws://b, ping_interval: soon}\n")
                == "route /a (routes[0] in config file /etc/vigil/vigil.yaml): invalid value \"soon\" for ping_interval: expected a duration such as 500ms, 30s or 2m (or 0)"
        )
        #expect(
            error("routes:\n  - {path: /a, upstream: ws://b, pong_timeout: 0}\n")
                == "invalid value \"0\" for pong_timeout (route /a in config file /etc/vigil/vigil.yaml): must be more than 0 while pings are enabled (ping_interval 30s)"
        )
        #expect(
            error("listen: none\nroutes:\n  - {path: /a, mode: echo}\n").hasPrefix("invalid value \"none\" for listen"))
        #expect(
            error("routes: []\n")
                == "routes in config file /etc/vigil/vigil.yaml is an empty list: leave it out for the single route of mode and path"
        )
        #expect(
            error("routes:\n  - {path: /a, mode: echo, upstream_pong_timeout: 1s}\n")
                == "route /a (routes[0] in config file /etc/vigil/vigil.yaml): upstream_pong_timeout is for a proxy route, and mode is echo"
        )
        #expect(
            error(
                "routes:\n  - {name: a, path: /, host: [a.example.com, b.example.com], mode: echo}\n  - {name: b, path: /, host: b.example.com, mode: echo}\n"
            )
                == "routes[1] in config file /etc/vigil/vigil.yaml: path / for host b.example.com is also routes[0]'s; each request must have one route"
        )
        #expect(
            error(
                "routes:\n  - {name: a, path: /, host: a.example.com, mode: echo}\n  - {name: b, path: /, host: b.example.com, mode: echo}\n  - {name: c, path: /, mode: echo}\n"
            ) == "no error", "other hosts, and a route for any host, on one path")
    }

    @Test("a reload takes the new routes as a whole")
    func reload() throws {
        let running = try SettingsLoader.resolve(
            flags: [:], environment: [:],
            file: ConfigFile.parse("routes:\n  - {path: /a, mode: echo}\n", path: "/etc/vigil.yaml"))
        let fresh = try SettingsLoader.resolve(
            flags: [:], environment: [:],
            file: ConfigFile.parse(
                "routes:\n  - {path: /a, mode: echo}\n  - {path: /b, upstream: ws://b}\n", path: "/etc/vigil.yaml"))
        let reload = SettingsReload(running: running, fresh: fresh)
        #expect(reload.updated.settings.routes.map(\.name) == ["/a", "/b"])
    }
}
