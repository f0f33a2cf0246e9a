// swift-tools-version:6.0
import PackageDescription

// Test fixture plugins, in a package of their own like any outside author's: they misbehave on purpose.
let package = Package(
    name: "FixturePlugins",
    products: [
        .library(name: "FaultyPlugin", type: .dynamic, targets: ["FaultyPlugin", "FaultyMagic"]),
        // The same plugin as version 2.0.0, for upgrades: the same source (a symlink), its own module.
        .library(name: "FaultyPluginV2", type: .dynamic, targets: ["FaultyPluginV2", "FaultyMagicV2"]),
    ],
    dependencies: [
        .package(path: "../../PluginSDK"),
    ],
    targets: [
        .target(name: "FaultyPlugin", dependencies: [.product(name: "PluginSDK", package: "PluginSDK")]),
        .target(name: "FaultyMagic", dependencies: [.product(name: "PluginMagic", package: "PluginSDK")], publicHeadersPath: "."),
        .target(name: "FaultyPluginV2", dependencies: [.product(name: "PluginSDK", package: "PluginSDK")]),
        .target(name: "FaultyMagicV2", dependencies: [.product(name: "PluginMagic", package: "PluginSDK")], publicHeadersPath: "."),
    ]
)
