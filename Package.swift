// swift-tools-version:6.1
import PackageDescription

/// Our own targets are built with warnings as errors: in Swift 6 mode many concurrency
/// mistakes around NIO's `@preconcurrency` APIs surface only as warnings, and we treat them as bugs.
///
/// `make fuzz` sets VIGIL_FUZZ_COVERAGE: then vigil's own modules, and only they, carry libFuzzer's
/// coverage instrumentation. Instrumenting the dependencies too (NIO above all) made libFuzzer
/// scan ten times the counters after every input, and guided it through code that is not ours.
let strict: [SwiftSetting] =
    [.unsafeFlags(["-warnings-as-errors"])]
    + (Context.environment["VIGIL_FUZZ_COVERAGE"] == nil
        ? []
        : [
            .unsafeFlags(
                // Coverage needs a sanitizer named: AddressSanitizer's build names it on the command
                // line, the libFuzzer-only build (VIGIL_FUZZ_ADDRESS_SANITIZER=0) names the fuzzer here.
                (Context.environment["VIGIL_FUZZ_ADDRESS_SANITIZER"] == "0" ? ["-sanitize=fuzzer"] : [])
                    + ["-sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp"])
        ])

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vigild", targets: ["vigild"]),
        .executable(name: "vigil-load", targets: ["vigil-load"]),
        .executable(name: "vigilctl", targets: ["vigilctl"]),
        .library(name: "VigilClient", targets: ["VigilClient"]),
        .library(name: "VigilFraming", targets: ["VigilFraming"]),
        .library(name: "VigilSupervisor", targets: ["VigilSupervisor"]),
        .library(name: "VigilConnection", targets: ["VigilConnection"]),
        .library(name: "VigilServer", targets: ["VigilServer"]),
        .library(name: "VigilProxy", targets: ["VigilProxy"]),
        .library(name: "VigilConfig", targets: ["VigilConfig"]),
        .library(name: "VigilRealClient", targets: ["VigilRealClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // zlib for permessage-deflate (Debian's zlib1g-dev).
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        // Sans-IO heartbeat/deadline state machine and close classifier. No NIO, no systemd.
        .target(name: "VigilSupervisor", swiftSettings: strict),

        // Text helpers every program shares: values made safe to quote, percent-encoding,
        // request targets taken apart, durations as people read them. Imports nothing.
        .target(name: "VigilText", swiftSettings: strict),

        // The framing core shared by the server and client sides.
        .target(
            name: "VigilFraming",
            dependencies: [
                "VigilSupervisor",
                "VigilText",
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // The supervised connection shell for both roles: the channel handler that drives the
        // supervisor, its timer wheel, and the message-sink and observer protocols it talks to.
        .target(
            name: "VigilConnection",
            dependencies: [
                "VigilSupervisor", "VigilFraming",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // The service-manager port: notifications, the notifier protocol, inherited sockets and
        // the watchdog gate. No NIO and no systemd; VigilSystemd implements it, VigilServer uses it.
        .target(name: "VigilServiceManager", swiftSettings: strict),

        // Live connections, recent closes and counters.
        .target(
            name: "VigilRegistry",
            dependencies: [
                "VigilSupervisor",
                .product(name: "Prometheus", package: "swift-prometheus"),
                // Locks ThreadSanitizer understands (Synchronization's Mutex is invisible to it here).
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // Settings with their defaults, parsers and layered sources (flags, environment, file).
        .target(
            name: "VigilConfig",
            dependencies: ["VigilSupervisor", "VigilText", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),

        // What every connection vigild holds shares, whichever part made it: the host (registry,
        // log, clock, timer wheels, channel directory) and its one factory of a connection's
        // books (entry, logger, observer), close logging, handshake refusals and HTTP error answers.
        .target(
            name: "VigilHost",
            dependencies: [
                "VigilSupervisor", "VigilFraming", "VigilConnection", "VigilRegistry", "VigilConfig", "VigilText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // The status API: its listeners, access rules, routes, JSON, page and close stream. It
        // reads the registry and the snapshots it is handed (phase, targets), nothing of the server.
        .target(
            name: "VigilStatus",
            dependencies: [
                "VigilHost", "VigilRegistry", "VigilConfig", "VigilConnection", "VigilSupervisor", "VigilText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Proxy mode: the upstream dial, the request sent upstream, the relay between the legs.
        .target(
            name: "VigilProxy",
            dependencies: [
                "VigilHost", "VigilClient", "VigilConnection", "VigilFraming", "VigilRegistry", "VigilConfig",
                "VigilSupervisor",
                "VigilText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Outbound monitor targets: dialing, holding, backoff, the application round trip.
        .target(
            name: "VigilTargets",
            dependencies: [
                "VigilHost", "VigilClient", "VigilConnection", "VigilFraming", "VigilRegistry", "VigilConfig",
                "VigilSupervisor",
                "VigilText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // vigild's server: the WebSocket listener, accept gate and handshake, route, upgrader,
        // echo and command sinks; lifecycle (start, reload, drain) over the modules above.
        .target(
            name: "VigilServer",
            dependencies: [
                "VigilSupervisor", "VigilFraming", "VigilConnection", "VigilRegistry", "VigilConfig",
                "VigilServiceManager",
                "VigilHost", "VigilStatus", "VigilProxy", "VigilTargets", "VigilText", "VigilTLS", "VigilRealClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // libsystemd (sd-daemon, sd-journal); only VigilSystemd imports it.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // systemd glue behind small Swift types: notifier, watchdog, socket activation, journal.
        .target(
            name: "VigilSystemd",
            dependencies: [
                "CSystemd", "VigilServiceManager",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // Who the client really is behind trusted proxies: the PROXY protocol header (its parser
        // and the handler that reads it first), Forwarded / X-Forwarded-For chains, the trust rule.
        .target(
            name: "VigilRealClient",
            dependencies: ["VigilConfig", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),

        // TLS for both roles: the listener's certificates (loaded, checked, chosen by SNI) and the
        // handlers around its TLS handler; what an operator reads of certificates and TLS errors.
        .target(
            name: "VigilTLS",
            dependencies: [
                "VigilConfig", "VigilRegistry", "VigilText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // The client side: a handshake that loses no bytes behind the 101, and a client program's
        // connection on the supervised shell (tests, the load generator).
        .target(
            name: "VigilClient",
            dependencies: [
                "VigilFraming", "VigilConnection", "VigilSupervisor", "VigilConfig", "VigilText", "VigilTLS",
                "VigilRegistry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "vigild",
            dependencies: [
                "VigilServer", "VigilConfig", "VigilRegistry", "VigilSystemd", "VigilServiceManager",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // The operator's command line for the status API.
        .executableTarget(
            name: "vigilctl",
            dependencies: [
                "VigilConfig", "VigilSupervisor", "VigilText",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // The load generator for the benchmarks, on the client side of the framing core.
        .executableTarget(
            name: "vigil-load",
            dependencies: [
                "VigilClient", "VigilFraming", "VigilConnection", "VigilSupervisor", "VigilConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),

        .testTarget(name: "VigilSupervisorTests", dependencies: ["VigilSupervisor"], swiftSettings: strict),
        .testTarget(
            name: "VigilFramingTests",
            dependencies: [
                "VigilFraming",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VigilConnectionTests",
            dependencies: [
                "VigilConnection", "VigilFraming", "VigilSupervisor",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "VigilRegistryTests", dependencies: ["VigilRegistry"], swiftSettings: strict),
        .testTarget(name: "VigilConfigTests", dependencies: ["VigilConfig"], swiftSettings: strict),
        .testTarget(name: "VigilTextTests", dependencies: ["VigilText"], swiftSettings: strict),
        .testTarget(
            name: "VigilRealClientTests", dependencies: ["VigilRealClient", "VigilConfig"], swiftSettings: strict),
        .testTarget(
            name: "VigilTLSTests",
            dependencies: [
                "VigilTLS", "VigilRegistry", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "VigilStatusTests",
            dependencies: ["VigilStatus", "VigilConfig", .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VigilProxyTests",
            dependencies: [
                "VigilProxy", "VigilClient", "VigilConfig", "VigilRegistry", "VigilSupervisor",
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VigilSystemdTests",
            dependencies: [
                "VigilSystemd", "VigilServer", "VigilHost", "VigilServiceManager", "VigilSupervisor", "VigilConfig",
                "VigilConnection",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VigilServerTests",
            dependencies: [
                "VigilServer", "VigilHost", "VigilClient", "VigilConfig", "VigilRegistry", "VigilSupervisor",
                "VigilFraming",
                "VigilConnection", "VigilText", "VigilRealClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)
