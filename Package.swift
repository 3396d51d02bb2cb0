// swift-tools-version:6.3
import PackageDescription

let package = Package(
    name: "plugvisor",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "plugvisor", targets: ["plugvisor"]),
        .executable(name: "plugvisor-worker", targets: ["plugvisor-worker"]),
        .executable(name: "plugvisor-broker", targets: ["plugvisor-broker"]),
        // The supervisor with the modules its API speaks in: manifests and JSON values.
        .library(name: "Plugvisor", targets: ["Plugvisor", "PlugvisorManifest", "PlugvisorProtocol"]),
        .library(name: "PlugvisorGateway", targets: ["PlugvisorGateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swiftwasm/WasmKit", exact: "0.4.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Without swift-configuration support (unused here): a shorter build.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
    ],
    targets: [
        // Executables stay thin: each forwards to a library target that tests can reach.
        .executableTarget(name: "plugvisor", dependencies: ["PlugvisorCLI"]),
        .executableTarget(name: "plugvisor-worker", dependencies: ["PlugvisorWorker"]),
        .executableTarget(name: "plugvisor-broker", dependencies: ["PlugvisorBroker"]),
        // scripts/bench.sh: the floor (a bare socketpair ping-pong) and the measurements.
        .executableTarget(name: "plugvisor-pingpong"),
        .executableTarget(
            name: "plugvisor-bench",
            dependencies: [
                "Plugvisor", "PlugvisorManifest", "PlugvisorProtocol", "PlugvisorPosix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // A measuring script with threads sharing counters under locks: Swift 5 checking.
            swiftSettings: [.swiftLanguageMode(.v5)]),
        // The embedding example (docs/embedding.md): a Swift program that runs plugins without the CLI.
        .executableTarget(
            name: "plugvisor-embedding-example",
            dependencies: [
                "Plugvisor", "PlugvisorManifest", "PlugvisorProtocol",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Examples/Embedding"),

        .target(
            name: "PlugvisorCLI",
            dependencies: [
                "Plugvisor", "PlugvisorGateway", "PlugvisorManifest", "PlugvisorProtocol", "PlugvisorPosix",
                "PlugvisorSandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The trusted supervisor. It never links WasmKit: guest bytes are only touched by workers.
        .target(
            name: "Plugvisor",
            dependencies: [
                "PlugvisorManifest", "PlugvisorProtocol", "PlugvisorPosix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The embedding example's plugin (docs/embedding.md), not a template of `plugvisor new`.
            exclude: ["Kits/rust/shop.rs"],
            // The kits and their examples, compiled into the binary from kits/ itself (Kits is a
            // link to it), so that there is one copy to maintain and an installed plugvisor needs
            // no resource bundle: `plugvisor new` writes them into a plugin's folder, and a
            // plugin built from Swift sources is compiled with the Swift kit.
            resources: [
                .embedInCode("Kits/c/plugvisor.h"), .embedInCode("Kits/c/greeter.c"),
                .embedInCode("Kits/swift/Plugvisor.swift"), .embedInCode("Kits/swift/greeter.swift"),
                .embedInCode("Kits/rust/plugvisor.rs"), .embedInCode("Kits/rust/greeter.rs"),
                .embedInCode("Kits/wat/greeter.wat"),
            ]
        ),
        // The optional HTTP gateway and /metrics, in the supervisor's process: it handles
        // untrusted HTTP clients but never guest bytes.
        .target(
            name: "PlugvisorGateway",
            dependencies: [
                "Plugvisor", "PlugvisorPosix", "PlugvisorProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Runs inside the sandboxed worker process; the only target that links WasmKit.
        .target(
            name: "PlugvisorWorker",
            dependencies: [
                "PlugvisorProtocol", "PlugvisorPosix", "PlugvisorSandbox", "CPlugvisorLinux",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WasmKitWASI", package: "WasmKit"),
                .product(name: "WASI", package: "WasmKit"),
                .product(name: "WasmParser", package: "WasmKit"),
                // The Extism kernel is WAT source in the worker, compiled when first needed.
                .product(name: "WAT", package: "WasmKit"),
            ]
        ),
        // Runs inside the sandboxed network broker process; the only target that uses
        // FoundationNetworking (libcurl), so that remote servers' bytes are never parsed in the
        // trusted supervisor.
        .target(
            name: "PlugvisorBroker",
            dependencies: ["PlugvisorProtocol", "PlugvisorPosix", "PlugvisorSandbox"]
        ),
        .target(name: "PlugvisorProtocol"),
        .target(
            name: "PlugvisorManifest",
            // PlugvisorProtocol for HostPattern: allowed_hosts entries are parsed where the
            // broker matches them.
            dependencies: ["PlugvisorProtocol", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "PlugvisorPosix",
            dependencies: ["CPlugvisorLinux", "PlugvisorProtocol"]
        ),
        .target(name: "CPlugvisorLinux", cSettings: [.define("_GNU_SOURCE")]),
        // The worker's lockdown: the allowlist as data with reasons, in the order nsjail uses.
        .target(name: "PlugvisorSandbox", dependencies: ["CPlugvisorSandbox", "PlugvisorProtocol"]),
        // libseccomp (Debian's libseccomp-dev), Landlock, rlimits; no _GNU_SOURCE here.
        .target(name: "CPlugvisorSandbox", linkerSettings: [.linkedLibrary("seccomp")]),
        // Test-only: finds fixtures and binaries, runs processes. Not a product.
        .target(name: "PlugvisorTestSupport", dependencies: ["PlugvisorPosix"]),

        .testTarget(name: "PlugvisorProtocolTests", dependencies: ["PlugvisorProtocol", "PlugvisorPosix"]),
        .testTarget(name: "PlugvisorManifestTests", dependencies: ["PlugvisorManifest", "PlugvisorProtocol"]),
        .testTarget(
            name: "PlugvisorCLITests",
            dependencies: [
                "PlugvisorCLI", "PlugvisorProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "PlugvisorSupervisorTests", dependencies: ["Plugvisor", "PlugvisorManifest", "PlugvisorProtocol"]),
        .testTarget(
            name: "PlugvisorWorkerTests",
            dependencies: [
                "PlugvisorWorker", "PlugvisorProtocol", "PlugvisorTestSupport",
                .product(name: "WasmKit", package: "WasmKit"),
            ]),
        .testTarget(
            name: "IntegrationTests",
            // Plugvisor and its modules for the embedding API in-process (AsyncPoolTests).
            dependencies: [
                "Plugvisor", "PlugvisorManifest", "PlugvisorProtocol", "PlugvisorPosix", "PlugvisorTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
