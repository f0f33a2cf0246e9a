// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "PluginSDK",
    products: [
        // Dynamic on purpose: the host and every plugin must share one copy of the SDK's type metadata,
        // otherwise `as? any Plugin` fails across the library boundary.
        .library(name: "PluginSDK", type: .dynamic, targets: ["PluginSDK"]),
        // The C layout of the magic block, which the host reads from a plugin's file before loading it.
        .library(name: "PluginMagic", targets: ["PluginMagic"]),
    ],
    targets: [
        .target(name: "PluginMagic", path: "Sources/PluginMagic"),
        .target(name: "PluginSDK", path: "Sources/PluginSDK"),
    ]
)
