// swift-tools-version:6.0
import PackageDescription

// The example plugins, built the way an outside author builds theirs: a package of its own that depends on
// the PluginSDK product. Each plugin is a dynamic library made of its Swift code and a one-line C file that
// declares its magic block.
let plugins: [(product: String, id: String)] = [
    ("NotesPlugin", "Notes"),
    ("AuditPlugin", "Audit"),
    ("EchoPlugin", "Echo"),
]

let package = Package(
    name: "ExamplePlugins",
    products: plugins.map { .library(name: $0.product, type: .dynamic, targets: [$0.product, "\($0.id)Magic"]) },
    dependencies: [
        .package(path: "../PluginSDK"),
    ],
    targets: plugins.flatMap { plugin -> [Target] in
        [
            .target(name: plugin.product, dependencies: [.product(name: "PluginSDK", package: "PluginSDK")]),
            .target(
                name: "\(plugin.id)Magic", dependencies: [.product(name: "PluginMagic", package: "PluginSDK")], publicHeadersPath: "."
            ),
        ]
    }
)
