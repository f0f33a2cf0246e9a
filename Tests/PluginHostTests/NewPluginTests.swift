import Foundation
import PluginHost
import Testing

@Suite("plugin-host new")
struct NewPluginTests {
    @Test("the package `plugin-host new` writes builds, validates, installs and serves as it is", .timeLimit(.minutes(10)))
    func scaffoldBuildsAndInstalls() async throws {
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
        let build = try await runCommand("/usr/bin/env", ["TMPDIR=\(scratch)", "swift", "build", "-c", "release"], in: package)
        #expect(build.status == 0, "the generated package does not build:\n\(build.output)")
        let validate = try await runCommand(cli, ["validate", package + "/plugin.yaml"])
        #expect(validate.status == 0, "\(validate.output)")

        try await withHost { host in
            let manifest = try String(contentsOfFile: package + "/plugin.yaml", encoding: .utf8)
            let reply = try await host.admin(.POST, "/v1/plugins?base=\(package)", body: Data(manifest.utf8), contentType: "application/yaml")
            #expect(reply.status == 201, "\(reply.text)")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("com.example.greeter", in: "ws1", grants: ["storage.read", "storage.write"])
            let first = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/com.example.greeter/resources/hello")
            let second = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/com.example.greeter/resources/hello")
            #expect(first.status == 200 && second.status == 200)
            #expect(first.json["count"] as? String == "1" && second.json["count"] as? String == "2")
        }
    }
}
