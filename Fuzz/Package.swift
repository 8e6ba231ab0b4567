// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for vigil, in a package of their own: they are built with
// -sanitize=fuzzer (libFuzzer supplies main), which the main package's builds must not see.
// Run them with `make fuzz SECONDS=N` from the repository root.
// `make fuzz-build` sets VIGIL_FUZZ_COVERAGE, so that vigil's modules carry coverage
// instrumentation, and builds everything twice: with AddressSanitizer (debug and release), and
// with libFuzzer alone (VIGIL_FUZZ_ADDRESS_SANITIZER=0), the fast build `make fuzz` runs.
// VIGIL_FUZZ_ADDRESS_SANITIZER=0 builds the targets with libFuzzer alone (see `make fuzz`).
let sanitizers =
    Context.environment["VIGIL_FUZZ_ADDRESS_SANITIZER"] == "0" ? "-sanitize=fuzzer" : "-sanitize=fuzzer,address"
let libFuzzer: [SwiftSetting] = [.unsafeFlags([sanitizers])]
let libFuzzerLink: [LinkerSetting] = [.unsafeFlags([sanitizers])]

let package = Package(
    name: "vigil-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "vigil", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // Hands the process to libFuzzer's driver.
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "VigilConnection", package: "vigil"),
                .product(name: "VigilSupervisor", package: "vigil"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),

        // Arbitrary bytes as the remote end's stream into the framing core and the supervised
        // shell, in either role.
        .executableTarget(
            name: "FuzzFraming",
            dependencies: [
                "FuzzSupport",
                .product(name: "VigilConnection", package: "vigil"),
                .product(name: "VigilFraming", package: "vigil"),
                .product(name: "VigilSupervisor", package: "vigil"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: libFuzzer, linkerSettings: libFuzzerLink
        ),
        // Arbitrary bytes into a server connection's whole pipeline: HTTP handshake, route and
        // header checks, refusals, and after an upgrade the framing core and supervised handler.
        .executableTarget(
            name: "FuzzConnection",
            dependencies: [
                "FuzzSupport",
                .product(name: "VigilServer", package: "vigil"),
                .product(name: "VigilConfig", package: "vigil"),
                .product(name: "VigilConnection", package: "vigil"),
                .product(name: "VigilSupervisor", package: "vigil"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: libFuzzer, linkerSettings: libFuzzerLink
        ),
        // Arbitrary bytes as a connection's first bytes on a listener with proxy_protocol (the
        // PROXY header parser, v1 and v2), and as forwarded headers from a trusted hop.
        .executableTarget(
            name: "FuzzProxyHeader",
            dependencies: ["FuzzSupport", .product(name: "VigilRealClient", package: "vigil")],
            swiftSettings: libFuzzer, linkerSettings: libFuzzerLink
        ),
        // Both legs of one proxied pair, joined by the real relay, fed by a script of bytes,
        // pauses and endings on either side.
        .executableTarget(
            name: "FuzzRelay",
            dependencies: [
                "FuzzSupport",
                .product(name: "VigilProxy", package: "vigil"),
                .product(name: "VigilConnection", package: "vigil"),
                .product(name: "VigilFraming", package: "vigil"),
                .product(name: "VigilSupervisor", package: "vigil"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: libFuzzer, linkerSettings: libFuzzerLink
        ),
    ]
)
