import Foundation
import PluginHost
import Testing

/// A plugin's life on a host: upgraded in place, checked again at every start, shut down gracefully,
/// and administered from the command line.
@Suite("Plugin lifecycle")
struct LifecycleTests {
    @Test("the host publishes core.plugin.enabled and core.plugin.disabled into the workspace, to subscribers holding the grant; no plugin may publish core.*")
    func hostEvents() async throws {
        // The audit plugin, also subscribed to the host's plugin events.
        let audit = try Fixtures.audit
            .replacingOccurrences(of: "  - events.subscribe:notes.*\n", with: "  - events.subscribe:notes.*\n  - events.subscribe:core.plugin.*\n")
            .replacingOccurrences(of: "subscriptions:\n  - notes.*\n", with: "subscriptions:\n  - notes.*\n  - core.plugin.*\n")
        #expect(audit.contains("core.plugin.*"))
        try await withHost { host in
            try await host.install(audit)
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1", "ws2"])
            try await host.enable("example.audit", in: "ws1", grants: TestHost.auditGrants + ["events.subscribe:core.plugin.*"])
            try await host.enable("example.audit", in: "ws2", grants: TestHost.auditGrants)  // without the grant
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("example.notes", in: "ws2", grants: TestHost.notesGrants)
            #expect(try await host.admin(.DELETE, "/v1/workspaces/ws1/plugins/example.notes").status == 204)
            func entries(_ workspace: String) async throws -> [[String: any Sendable]] {
                try await host.admin(.GET, "/v1/workspaces/\(workspace)/plugins/example.audit/resources/entries").json["entries"] as? [[String: any Sendable]] ?? []
            }
            #expect(try await eventually {
                let types = try await entries("ws1").compactMap { $0["type"] as? String }
                return types.contains("core.plugin.enabled") && types.contains("core.plugin.disabled")
            })
            let enabled = try await entries("ws1").first { $0["type"] as? String == "core.plugin.enabled" }
            #expect(enabled?["sourcePluginID"] as? String == "core")
            #expect("\(enabled?["payload"] ?? "")".contains("example.notes"))
            // ws2's audit holds no grant for them, and nothing crosses workspaces.
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await entries("ws2").isEmpty)
            // A plugin cannot ask to publish them.
            let forger = try Fixtures.notes.replacingOccurrences(of: "id: example.notes", with: "id: example.forger")
                .replacingOccurrences(of: "events.publish:notes.*", with: "events.publish:core.*")
            let refused = try await host.admin(.POST, "/v1/plugins", body: Data(forger.utf8), contentType: "application/yaml")
            #expect(refused.errorCode == "INVALID_MANIFEST")
            #expect(refused.text.contains("events are the host's own"), "\(refused.text)")
        }
    }

    @Test("an upgrade keeps the enablements and their grants and config, and the new version answers", arguments: StoreKind.allCases)
    func upgrade(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.faulty())
            try await host.tenant("acme", workspaces: ["ws1", "ws2"])
            try await host.enable("test.faulty", in: "ws1", grants: ["storage.read"], config: ["apiKey": "k1"])
            try await host.enable("test.faulty", in: "ws2", grants: [])
            let module = "/v1/workspaces/ws1/plugins/test.faulty/resources/module"
            #expect(try await host.admin(.GET, module).json["module"] as? String == "FaultyPlugin")

            let upgraded = try await host.install(try Fixtures.faulty(version: "2.0.0"))
            #expect(upgraded.json["version"] as? String == "2.0.0")
            #expect(upgraded.json["status"] as? String == "loaded")
            #expect(upgraded.json["enabledIn"] as? [String] == ["ws1", "ws2"])
            let enabled = try await host.admin(.GET, "/v1/workspaces/ws1/plugins").json["plugins"] as? [[String: any Sendable]] ?? []
            #expect(enabled.first?["grants"] as? [String] == ["storage.read"])
            #expect((enabled.first?["config"] as? [String: any Sendable])?["apiKey"] as? String == "********")
            #expect(try await host.admin(.GET, module).json["module"] as? String == "FaultyPluginV2")
            #expect(try await host.admin(.GET, "/v1/workspaces/ws2/plugins/test.faulty/resources/fine").status == 200)
        }
    }

    @Test("a library whose bytes no longer match the manifest's sha256 is refused at the next start, with the reason")
    func pinnedDigestCheckedAtStart() async throws {
        let folder = try TemporaryFolder()
        let library = folder.path + "/libEchoPlugin.so"
        try FileManager.default.copyItem(atPath: try Fixtures.library("EchoPlugin"), toPath: library)
        let digest = try PluginLibraryLoader().inspect(path: library).sha256
        let manifest = try Fixtures.echo.replacingOccurrences(of: try Fixtures.library("EchoPlugin"), with: library)
            .replacingOccurrences(of: "\"kind\": \"library\",", with: "\"kind\": \"library\", \"sha256\": \"\(digest)\",")
        let data = try TemporaryFolder()
        try await TestHost.running(data: data.path) { host in
            try await host.install(manifest, contentType: "application/json")
        }
        // The same plugin, id and version, in other bytes: trailing data the ELF reader ignores.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: library))
        bytes.append(contentsOf: Array("rebuilt".utf8))
        try bytes.write(to: URL(fileURLWithPath: library), options: .atomic)
        try await TestHost.running(data: data.path) { host in
            let status = try await host.admin(.GET, "/v1/plugins/example.echo")
            #expect(status.json["status"] as? String == "failed")
            #expect((status.json["loadError"] as? String)?.contains("the manifest pins \(digest)") == true, "\(status.text)")
        }
    }

    @Test("a graceful stop answers the requests in flight, then calls the plugins' shutdown hooks")
    func gracefulShutdown() async throws {
        let folder = try TemporaryFolder()
        let marker = folder.path + "/shut-down"
        let data = try TemporaryFolder()
        let host = try await TestHost.start(data: data.path)
        do {
            try await host.install(try Fixtures.faulty())
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [], config: ["marker": marker])
            let slow = Task { try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/slow") }
            try await Task.sleep(for: .milliseconds(300))
            #expect(!FileManager.default.fileExists(atPath: marker))
            try await host.stop()
            #expect(try await slow.value.status == 200, "the request in flight was answered")
            #expect((try? String(contentsOfFile: marker, encoding: .utf8)) == "shut down", "the shutdown hook ran")
        } catch {
            try? await host.stop()
            throw error
        }
    }

    @Test("`plugin-host plugins`, `tenants`, `workspaces`, `enable` and `disable` administer a host over its API")
    func administrationCommands() async throws {
        let cli = HostProcess.executable
        try #require(FileManager.default.isExecutableFile(atPath: cli), "build the CLI first (make test does)")
        let folder = try TemporaryFolder()
        let manifest = try folder.file("notes.yaml", try Fixtures.notes)
        try await withHost { host in
            func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                try await runCommand("/usr/bin/env", ["PLUGIN_HOST_URL=http://127.0.0.1:\(host.port)", "PLUGIN_HOST_TOKEN=\(host.adminToken)", cli] + arguments)
            }
            let installed = try await run(["plugins", "install", manifest])
            #expect(installed.status == 0 && installed.output.contains("installed example.notes 1.0.0 (loaded)"), "\(installed.output)")
            let plugins = try await run(["plugins"])
            #expect(plugins.status == 0 && plugins.output.contains("example.notes") && plugins.output.contains("loaded"), "\(plugins.output)")
            let shown = try await run(["plugins", "get", "example.notes"]).output
            #expect(shown.contains("\"version\"") && shown.contains("\"1.0.0\""), "\(shown)")

            #expect(try await run(["tenants", "create", "acme", "--name", "Acme"]).output.contains("created tenant acme"))
            let tenants = try await run(["tenants", "list"])
            #expect(tenants.status == 0 && tenants.output.contains("acme") && tenants.output.contains("Acme"), "\(tenants.output)")
            #expect(try await run(["workspaces", "create", "--tenant", "acme", "ws1"]).output.contains("created workspace ws1 in tenant acme"))
            let workspaces = try await run(["workspaces", "list", "--tenant", "acme"])
            #expect(workspaces.status == 0 && workspaces.output.contains("ws1"), "\(workspaces.output)")

            let enabled = try await run(["enable", "ws1", "example.notes", "--grant", "storage.read", "--grant", "storage.write", "--config", #"{"maxLength": 20}"#])
            #expect(enabled.status == 0 && enabled.output.contains("enabled example.notes in ws1"), "\(enabled.output)")
            let listed = try await run(["workspaces", "plugins", "ws1"])
            #expect(listed.output.contains("example.notes") && listed.output.contains("storage.write"), "\(listed.output)")
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": String(repeating: "x", count: 21)]).status == 400)

            let refused = try await run(["enable", "ws1", "example.notes", "--grant", "storage.wipe"])
            #expect(refused.status != 0 && refused.output.contains("INVALID_GRANT"), "\(refused.output)")
            let busy = try await run(["plugins", "uninstall", "example.notes"])
            #expect(busy.status != 0 && busy.output.contains("PLUGIN_IN_USE"), "\(busy.output)")
            #expect(try await run(["disable", "ws1", "example.notes"]).output.contains("disabled example.notes in ws1"))
            #expect(try await run(["plugins", "uninstall", "example.notes"]).output.contains("uninstalled example.notes"))
            #expect(try await host.admin(.GET, "/v1/plugins/example.notes").status == 404)
        }
    }
}
