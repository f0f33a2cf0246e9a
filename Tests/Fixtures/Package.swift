// swift-tools-version:6.0
import PackageDescription

// Test fixture plugins, in a package of their own like any outside author's: they misbehave on purpose.
let package = Package(
    name: "FixturePlugins",
    products: [
        .library(name: "FaultyPlugin", type: .dynamic, targets: ["FaultyPlugin", "FaultyMagic"]),
    ],
    dependencies: [
        .package(path: "../../PluginSDK"),
    ],
    targets: [
        .target(name: "FaultyPlugin", dependencies: [.product(name: "PluginSDK", package: "PluginSDK")]),
        .target(name: "FaultyMagic", dependencies: [.product(name: "PluginMagic", package: "PluginSDK")], publicHeadersPath: "."),
    ]
)
