import Foundation
import PluginHost
import Testing

@Suite("Restart persistence")
struct PersistenceTests {
    @Test("plugins, tenants, tokens, enablements and plugin data survive a restart", arguments: StoreKind.allCases)
    func survivesRestart(store: StoreKind) async throws {
        let folder = try TemporaryFolder()
        try await withDatabase(store) { database in
            let member = try await TestHost.running(data: folder.path, postgres: database?.hostConfiguration()) { host in
                try await host.install(try Fixtures.notes)
                try await host.tenant("acme", workspaces: ["ws1"])
                try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants, config: ["maxLength": 50])
                let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
                #expect(try await host.request(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: member, json: ["text": "before restart"]).status == 201)
                return member
            }
            try await TestHost.running(data: folder.path, postgres: database?.hostConfiguration()) { host in
                let notes = try await host.request(.GET, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: member)
                #expect(notes.status == 200)
                #expect((notes.json["notes"] as? [[String: any Sendable]])?.first?["text"] as? String == "before restart")
                // The config persisted too: maxLength 50 still applies.
                let long = try await host.request(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: member, json: ["text": String(repeating: "x", count: 51)])
                #expect(long.status == 400)
                let plugins = try await host.admin(.GET, "/v1/plugins").json["plugins"] as? [[String: any Sendable]]
                #expect(plugins?.first?["status"] as? String == "loaded")
            }
        }
    }

    @Test("a revoked --admin-token stays revoked when the host restarts with it", arguments: StoreKind.allCases)
    func revokedAdminTokenStaysRevoked(store: StoreKind) async throws {
        let folder = try TemporaryFolder()
        try await withDatabase(store) { database in
            let second = try await TestHost.running(data: folder.path, postgres: database?.hostConfiguration()) { host in
                let second = try #require(try await host.admin(.POST, "/v1/tokens", json: ["subject": "rotated"]).json["token"] as? String)
                let configuredID = try #require((try await host.admin(.GET, "/v1/tokens").json["tokens"] as? [[String: any Sendable]])?.first?["id"] as? String)
                #expect(configuredID.hasPrefix("admin-"))
                #expect(try await host.request(.DELETE, "/v1/tokens/\(configuredID)", token: second).status == 204)
                return second
            }
            // The same configuration, --admin-token included.
            try await TestHost.running(data: folder.path, postgres: database?.hostConfiguration()) { (host: TestHost) async throws in
                #expect(try await host.request(.GET, "/v1/plugins", token: host.adminToken).status == 401)
                #expect(try await host.request(.GET, "/v1/plugins", token: second).status == 200)
            }
        }
    }

    @Test("without a configured admin token the first start generates one, stores only its hash, and never repeats it")
    func generatedAdminToken() async throws {
        let folder = try TemporaryFolder()
        let announced = AnnouncedTokens()
        let app = try await buildApplication(configuration: HostConfiguration(dataDirectory: folder.path, port: 0), announceAdminToken: { announced.add($0) })
        _ = app
        let tokens = announced.all
        #expect(tokens.count == 1)
        #expect(FileManager.default.fileExists(atPath: folder.path + "/plugin-host.sqlite"))
        #expect(!storeFiles(in: folder.path, contain: tokens[0]), "the token's secret must not be stored")
        _ = try await buildApplication(configuration: HostConfiguration(dataDirectory: folder.path, port: 0), announceAdminToken: { announced.add($0) })
        #expect(announced.all.count == 1)
    }
}

final class AnnouncedTokens: @unchecked Sendable {
    private let lock = NSLock()
    private var tokens: [String] = []
    func add(_ token: String) { lock.withLock { tokens.append(token) } }
    var all: [String] { lock.withLock { tokens } }
}
