import Foundation
import PluginHost
import Testing

@Suite("plugin-host new")
struct NewPluginTests {
    @Test("the author's loop, one command per step: new, pack, install; a new version in plugin.yaml, pack, install", .timeLimit(.minutes(10)))
    func authorsLoop() async throws {
        let folder = try TemporaryFolder()
        let package = folder.path + "/greeter"
        let cli = Fixtures.root.appendingPathComponent(".build/debug/plugin-host").path
        try #require(FileManager.default.isExecutableFile(atPath: cli), "build the CLI first (make test does)")
        // The SDK in a folder of another name than its package's: SwiftPM knows it by the folder's.
        let sdk = folder.path + "/plugin-sdk-checkout"
        try FileManager.default.createSymbolicLink(atPath: sdk, withDestinationPath: Fixtures.root.appendingPathComponent("PluginSDK").path)
        #expect(try await runCommand(cli, ["new", "greeter", "--output", package, "--sdk", sdk]).status == 0)
        // SwiftPM leaves lock files in TMPDIR; point it into the test's folder so they go with it.
        let scratch = folder.path + "/tmp"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        func pack() async throws -> String {
            let packed = try await runCommand("/usr/bin/env", ["TMPDIR=\(scratch)", cli, "pack"], in: package)
            #expect(packed.status == 0, "pack failed:\n\(packed.output)")
            return packed.output
        }

        let first = try await pack()
        let bundle = package + "/com.example.greeter-0.1.0.bundle"
        #expect(FileManager.default.fileExists(atPath: bundle), "\(first)")
        try await withHost { host in
            let connection = ["--url", "http://127.0.0.1:\(host.port)", "--token", host.adminToken]
            let installed = try await runCommand(cli, ["plugins", "install", bundle] + connection)
            #expect(installed.status == 0, "\(installed.output)")
            #expect(installed.output.contains("installed com.example.greeter 0.1.0"), "\(installed.output)")
            try await host.tenant("acme", workspaces: ["ws1"])
            #expect(try await runCommand(cli, ["enable", "ws1", "com.example.greeter", "--grant", "storage.read", "--grant", "storage.write"] + connection).status == 0)
            let hello = "/v1/workspaces/ws1/plugins/com.example.greeter/resources/hello"
            #expect(try await host.admin(.GET, hello).json["count"] as? String == "1")

            // A new version is written once, in plugin.yaml; pack carries it into the magic block.
            let manifest = package + "/plugin.yaml"
            try (try String(contentsOfFile: manifest, encoding: .utf8)).replacingOccurrences(of: "version: 0.1.0", with: "version: 0.2.0")
                .write(toFile: manifest, atomically: true, encoding: .utf8)
            let second = try await pack()
            #expect(second.contains("to com.example.greeter 0.2.0, from the manifest"), "\(second)")
            let magic = try String(contentsOfFile: package + "/Sources/GreeterMagic/magic.c", encoding: .utf8)
            #expect(magic.contains(#"PLUGIN_HOST_MAGIC("com.example.greeter", "0.2.0")"#))
            let upgraded = try await runCommand(cli, ["plugins", "install", package + "/com.example.greeter-0.2.0.bundle"] + connection)
            #expect(upgraded.output.contains("installed com.example.greeter 0.2.0"), "\(upgraded.output)")
            #expect(try await host.admin(.GET, "/v1/plugins/com.example.greeter").json["version"] as? String == "0.2.0")
            // The workspace's data and grants carried over.
            #expect(try await host.admin(.GET, hello).json["count"] as? String == "2")
        }
    }
}
