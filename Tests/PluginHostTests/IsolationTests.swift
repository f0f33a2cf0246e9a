import Foundation
import PluginHost
import Testing

@Suite("Workspace and tenant isolation")
struct IsolationTests {
    @Test("a plugin enabled in two workspaces reads and writes only the calling workspace's notes", arguments: StoreKind.allCases)
    func storageIsolatedPerWorkspace(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws-a", "ws-b"])
            for workspace in ["ws-a", "ws-b"] { try await host.enable("example.notes", in: workspace, grants: TestHost.notesGrants) }
            #expect(try await host.admin(.POST, "/v1/workspaces/ws-a/plugins/example.notes/resources/notes", json: ["text": "only in A"]).status == 201)
            let a = try await host.admin(.GET, "/v1/workspaces/ws-a/plugins/example.notes/resources/notes")
            let b = try await host.admin(.GET, "/v1/workspaces/ws-b/plugins/example.notes/resources/notes")
            #expect((a.json["notes"] as? [Any])?.count == 1)
            #expect((b.json["notes"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("another tenant's workspace is not found for its admins and members, and its data never shows", arguments: StoreKind.allCases)
    func tenantIsolation(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["acme-ws"])
            try await host.tenant("globex", workspaces: ["globex-ws"])
            try await host.enable("example.notes", in: "acme-ws", grants: TestHost.notesGrants)
            try await host.enable("example.notes", in: "globex-ws", grants: TestHost.notesGrants)
            #expect(try await host.admin(.POST, "/v1/workspaces/acme-ws/plugins/example.notes/resources/notes", json: ["text": "acme secret"]).status == 201)
            let globexAdmin = try await host.token(tenant: "globex", role: "tenant-admin")
            let globexMember = try await host.token(tenant: "globex", role: "member", workspaces: ["globex-ws"])
            for token in [globexAdmin, globexMember] {
                let reply = try await host.request(.GET, "/v1/workspaces/acme-ws/plugins/example.notes/resources/notes", token: token)
                #expect(reply.status == 404)
                #expect(reply.errorCode == "WORKSPACE_NOT_FOUND")
                #expect(!reply.text.contains("acme secret"))
                #expect(try await host.request(.GET, "/v1/workspaces/acme-ws/plugins", token: token).status == 404)
            }
            #expect(try await host.request(.PUT, "/v1/workspaces/acme-ws/plugins/example.notes", token: globexAdmin, json: ["grants": []]).status == 404)
            #expect(try await host.request(.POST, "/v1/tenants/acme/workspaces", token: globexAdmin, json: ["id": "x", "name": "x"]).status == 404)
            #expect(try await host.request(.POST, "/v1/tenants/acme/tokens", token: globexAdmin, json: ["role": "member", "subject": "x", "workspaces": ["acme-ws"]]).status == 404)
            // A globex admin cannot mint a member token for an acme workspace through its own tenant either.
            #expect(try await host.request(.POST, "/v1/tenants/globex/tokens", token: globexAdmin, json: ["role": "member", "subject": "x", "workspaces": ["acme-ws"]]).status == 400)
            let own = try await host.request(.GET, "/v1/workspaces/globex-ws/plugins/example.notes/resources/notes", token: globexMember)
            #expect((own.json["notes"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("events reach only subscribers enabled in the publishing workspace", arguments: StoreKind.allCases)
    func eventsIsolated(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.install(try Fixtures.audit)
            try await host.tenant("acme", workspaces: ["ws-a", "ws-b"])
            try await host.tenant("globex", workspaces: ["ws-c"])
            for workspace in ["ws-a", "ws-b", "ws-c"] {
                try await host.enable("example.notes", in: workspace, grants: TestHost.notesGrants)
                try await host.enable("example.audit", in: workspace, grants: TestHost.auditGrants)
            }
            #expect(try await host.admin(.POST, "/v1/workspaces/ws-a/plugins/example.notes/resources/notes", json: ["text": "event in A"]).status == 201)
            func entries(_ workspace: String) async throws -> [[String: any Sendable]] {
                try await host.admin(.GET, "/v1/workspaces/\(workspace)/plugins/example.audit/resources/entries").json["entries"] as? [[String: any Sendable]] ?? []
            }
            #expect(try await eventually { try await entries("ws-a").count == 1 })
            let entry = try await entries("ws-a").first
            #expect(entry?["type"] as? String == "notes.created")
            #expect((entry?["payload"] as? [String: any Sendable])?["text"] as? String == "event in A")
            // Give a wrongly routed delivery time to land before checking that none did.
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await entries("ws-b").isEmpty)
            #expect(try await entries("ws-c").isEmpty)
        }
    }

    @Test("a failing event handler is retried a bounded number of times, and other subscribers still get the event", arguments: StoreKind.allCases)
    func failingHandlerRetried(store: StoreKind) async throws {
        try await withHost(store: store, configure: { $0.eventRetry = .init(maxAttempts: 3, initialDelay: .milliseconds(5)) }) { host in
            try await host.install(try Fixtures.notes)
            try await host.install(try Fixtures.audit)
            try await host.install(try Fixtures.faulty())
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("example.audit", in: "ws1", grants: TestHost.auditGrants)
            try await host.enable("test.faulty", in: "ws1", grants: ["events.subscribe:notes.*"])
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "x"]).status == 201)
            let failures = "plugin_host_plugin_errors_total{plugin=\"test.faulty\",kind=\"event\"} 3"
            #expect(try await eventually { try await host.request(.GET, "/metrics").text.contains(failures) })
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await host.request(.GET, "/metrics").text.contains(failures), "no attempt beyond the third")
            let entries = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.audit/resources/entries").json["entries"] as? [Any]
            #expect(entries?.count == 1)
        }
    }

    @Test("a subscriber without the subscribe grant receives nothing", arguments: StoreKind.allCases)
    func subscribeNeedsGrant(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.install(try Fixtures.audit)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("example.audit", in: "ws1", grants: ["storage.read", "storage.write"])
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "x"]).status == 201)
            try await Task.sleep(for: .milliseconds(300))
            let entries = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.audit/resources/entries").json["entries"] as? [Any]
            #expect(entries?.isEmpty == true)
        }
    }

    @Test("a value over the storage limit is refused with 413 VALUE_TOO_LARGE and nothing is stored", arguments: StoreKind.allCases)
    func valueOverLimit(store: StoreKind) async throws {
        try await withHost(store: store, configure: { $0.maxValueBytes = 256 }) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            let big = try await host.admin(.POST, notes, json: ["text": String(repeating: "x", count: 300)])
            #expect(big.status == 413 && big.errorCode == "VALUE_TOO_LARGE", "\(big.text)")
            #expect(big.text.contains("256"), "the error names the limit: \(big.text)")
            #expect(try await host.admin(.POST, notes, json: ["text": "small"]).status == 201)
            #expect((try await host.admin(.GET, notes).json["notes"] as? [Any])?.count == 1)
        }
    }

    @Test("storage keeps keys as data: quotes, backslashes, NUL and SQL round-trip within one scope", arguments: StoreKind.allCases)
    func storageKeysAreData(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let scope = StorageScope(workspaceID: "ws-a", pluginID: "p")
            let other = StorageScope(workspaceID: "ws-b", pluginID: "p")
            let keys = ["plain", "it's \"quoted\"", "back\\slash", "nul\u{0}inside", "'); DROP TABLE kv; --", "ünïcødé/😀"]
            for (index, key) in keys.enumerated() {
                #expect(try await store.put(scope, key: key, value: Data([UInt8(index), 0, 255]), expectedVersion: nil) == 1)
        }
        for (index, key) in keys.enumerated() {
            #expect(try await store.get(scope, key: key)?.value == Data([UInt8(index), 0, 255]))
            #expect(try await store.get(other, key: key) == nil)
        }
        #expect(try await store.list(scope, prefix: "", limit: 100, after: nil).entries.map(\.key).sorted() == keys.sorted())
        #expect(try await store.list(other, prefix: "", limit: 100, after: nil).entries.isEmpty)
        // Compare-and-set and paging.
        await #expect(throws: StoreError.self) { try await store.put(scope, key: "plain", value: Data(), expectedVersion: 5) }
        #expect(try await store.put(scope, key: "plain", value: Data([9]), expectedVersion: 1) == 2)
        await #expect(throws: StoreError.self) { try await store.put(scope, key: "new", value: Data(), expectedVersion: 1) }
        #expect(try await store.put(scope, key: "new", value: Data(), expectedVersion: 0) == 1)
        let first = try await store.list(scope, prefix: "", limit: 3, after: nil)
        let second = try await store.list(scope, prefix: "", limit: 100, after: first.nextCursor)
        #expect(first.entries.count == 3 && first.nextCursor != nil && second.nextCursor == nil)
        #expect(first.entries.count + second.entries.count == keys.count + 1)
        #expect(try await store.delete(scope, key: "nul\u{0}inside"))
        #expect(try await store.get(scope, key: "nul\u{0}inside") == nil)
        // Prefix listing is exact on bytes: "back" matches only the key that starts with it.
        #expect(try await store.list(scope, prefix: "back", limit: 10, after: nil).entries.map(\.key) == ["back\\slash"])
        }
    }
}
