// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "plugin-host",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "plugin-host", targets: ["PluginHostCLI"]),
        .library(name: "PluginHost", targets: ["PluginHost"]),
        .library(name: "PluginHostFormats", targets: ["PluginHostFormats"]),
        .executable(name: "plugin-host-worker", targets: ["PluginWorker"]),
        .executable(name: "plugin-host-bench", targets: ["PluginHostBench"]),
        .executable(name: "plugin-host-fuzz", targets: ["PluginHostFuzz"]),
    ],
    dependencies: [
        // PluginSDK is its own package with a dynamic product, so the host process holds exactly one copy
        // of its type metadata and plugins built elsewhere resolve their libPluginSDK.so to it.
        .package(path: "PluginSDK"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            path: "Host/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            path: "Host/CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // The formats the host reads from outside (manifests, plugin libraries, remote envelopes, SDK
        // tokens), apart from the server so that the fuzz targets (Tests/Fuzz) build without it.
        .target(
            name: "PluginHostFormats",
            dependencies: [
                .product(name: "PluginSDK", package: "PluginSDK"),
                .product(name: "PluginMagic", package: "PluginSDK"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Host/PluginHostFormats"
        ),
        .target(
            name: "PluginHost",
            dependencies: [
                "PluginHostFormats",
                "CSQLite",
                "CLibPQ",
                .product(name: "PluginSDK", package: "PluginSDK"),
                .product(name: "PluginMagic", package: "PluginSDK"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            path: "Host/PluginHost"
        ),
        // The process a library plugin runs in with `isolation: worker`: the SDK, the loader's checks and
        // the frame format only, so that it starts fast and stays small.
        .executableTarget(
            name: "PluginWorker",
            dependencies: [
                "PluginHostFormats",
                .product(name: "PluginSDK", package: "PluginSDK"),
            ],
            path: "Host/PluginWorker"
        ),
        .executableTarget(
            name: "PluginHostCLI",
            dependencies: [
                "PluginHost",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Host/PluginHostCLI"
        ),
        .executableTarget(
            name: "PluginHostBench",
            dependencies: [
                "PluginHost",
                "CLibPQ",
                .product(name: "PluginSDK", package: "PluginSDK"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Host/PluginHostBench"
        ),
        // Fuzz targets for the parsers of outside bytes (`make fuzz`), and the driver libFuzzer runs.
        .target(
            name: "PluginHostFuzzing",
            dependencies: ["PluginHostFormats", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/Fuzz/Targets"
        ),
        .executableTarget(
            name: "PluginHostFuzz",
            dependencies: ["PluginHostFuzzing"],
            path: "Tests/Fuzz/Driver",
            // Under libFuzzer the driver has no main of its own.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .testTarget(
            name: "PluginHostTests",
            dependencies: [
                "PluginHost",
                "PluginHostFuzzing",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            path: "Tests/PluginHostTests"
        ),
    ]
)
