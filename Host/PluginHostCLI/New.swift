import ArgumentParser
import Foundation

struct New: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a ready-to-build plugin package: Package.swift on PluginSDK, a plugin skeleton and its manifest.")

    @Argument(help: "Name of the plugin, for example greeter.")
    var name: String

    @Option(help: "Plugin id (reverse-DNS); default com.example.<name>.")
    var id: String?

    @Option(help: "Folder to create; default ./<name>.")
    var output: String?

    @Option(help: "Path of the PluginSDK package; default the one next to this plugin-host build.")
    var sdk: String?

    func run() throws {
        let slug = name.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "-" }
        guard !slug.isEmpty, slug.first!.isLetter else { throw ValidationError("name must start with a letter and hold letters, digits or -") }
        let typeName = slug.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        let product = "\(typeName)Plugin"
        let pluginID = id ?? "com.example.\(slug)"
        let folder = URL(fileURLWithPath: output ?? slug).standardizedFileURL
        guard !FileManager.default.fileExists(atPath: folder.path) else { throw ValidationError("\(folder.path) exists already; pick another name or --output") }
        guard let sdkPath = sdk.map({ URL(fileURLWithPath: $0).standardizedFileURL.path }) ?? Self.bundledSDK() else {
            throw ValidationError("cannot find PluginSDK next to this plugin-host; pass --sdk PATH")
        }
        // SwiftPM knows a package by its folder's name (its identity), whatever its manifest calls it.
        let sdkPackage = URL(fileURLWithPath: sdkPath).lastPathComponent
        let files: [String: String] = [
            "Package.swift": """
            // swift-tools-version:6.0
            import PackageDescription

            let package = Package(
                name: "\(product)",
                products: [
                    // A dynamic library: the host dlopens it. It must link PluginSDK dynamically, never statically.
                    .library(name: "\(product)", type: .dynamic, targets: ["\(product)", "\(typeName)Magic"]),
                ],
                dependencies: [
                    .package(path: "\(sdkPath)"),
                ],
                targets: [
                    .target(name: "\(product)", dependencies: [.product(name: "PluginSDK", package: "\(sdkPackage)")]),
                    .target(name: "\(typeName)Magic", dependencies: [.product(name: "PluginMagic", package: "\(sdkPackage)")], publicHeadersPath: "."),
                ]
            )

            """,
            "Sources/\(product)/\(product).swift": """
            import PluginSDK

            /// \(typeName): counts the greetings of each workspace.
            final class \(product): Plugin {
                func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
                    switch (request.method, request.path) {
                    case ("GET", "hello"):
                        let count = (try await context.storage.get("count", as: Int.self) ?? 0) + 1
                        try await context.storage.put("count", json: count)
                        return try .json(["hello": context.caller.subject, "workspace": context.workspaceID, "count": "\\(count)"])
                    default:
                        throw PluginError.notFound("\\(request.method) \\(request.path)")
                    }
                }
            }

            @_cdecl("plugin_host_entry")
            public func pluginHostEntry() -> UnsafeMutableRawPointer {
                PluginExport.entry(\(product)())
            }

            """,
            "Sources/\(typeName)Magic/magic.c": """
            #include <plugin_host_magic.h>

            // Written by plugin-host pack from plugin.yaml, where the id and version are kept: change them
            // there. (The host refuses a library whose magic block and manifest differ.)
            PLUGIN_HOST_MAGIC("\(pluginID)", "0.1.0");

            """,
            "plugin.yaml": """
            id: \(pluginID)
            name: \(typeName)
            version: 0.1.0
            sdk: ^1.0.0
            description: Says hello and counts greetings per workspace.
            runtime:
              kind: library
              path: .build/release/lib\(product).so
            permissions:
              - storage.read
              - storage.write
            routes:
              - method: GET
                path: hello
                minimumRole: member

            """,
            ".gitignore": ".build/\nPackage.resolved\n*.bundle\n",
            "README.md": """
            # \(typeName)

            A plugin-host plugin. Its id and version are written once, in plugin.yaml.

                plugin-host pack                                  # builds, checks, writes \(pluginID)-0.1.0.bundle
                plugin-host plugins install \(pluginID)-0.1.0.bundle
                plugin-host enable WORKSPACE \(pluginID) --grant storage.read --grant storage.write

            A new version: raise `version` in plugin.yaml, then pack and install again.

            """,
        ]
        for (path, content) in files {
            let url = folder.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try content.write(to: url, atomically: true, encoding: .utf8)
        }
        print("wrote \(folder.path); build and pack it with: cd \(folder.path) && plugin-host pack")
    }

    /// PluginSDK of the checkout this binary was built in (`<root>/.build/<config>/plugin-host`).
    static func bundledSDK() -> String? {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = url.appendingPathComponent("PluginSDK/Package.swift")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.deletingLastPathComponent().path }
            url.deleteLastPathComponent()
        }
        return nil
    }
}
