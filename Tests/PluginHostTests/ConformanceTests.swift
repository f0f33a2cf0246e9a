import Foundation
import PluginHost
import Testing

/// The conformance kit: one scenario per behaviour of the notes plugin, run against each runtime it can
/// have: in-process, in a worker process, `serve-plugin` (the same library as a remote plugin) and the
/// Python plugin. The host,
/// manifest fields, routes, grants and events are the same in every case; only `runtime` differs.
@Suite("Conformance: notes plugin, whatever its runtime")
struct ConformanceTests {
    /// A host with `example.notes` (in `runtime`) and the in-process `example.audit` installed, tenant
    /// `acme` with workspaces ws1 and ws2; notes enabled with `grants` in both, audit in both.
    func withNotes(_ runtime: NotesRuntime, grants: [String] = TestHost.notesGrants, config: [String: Any] = [:], _ body: (TestHost) async throws -> Void) async throws {
        let folder = try TemporaryFolder()
        let remote: RemotePluginProcess? = switch runtime {
        case .library, .worker: nil
        case .servePlugin: try await RemotePluginProcess.servePlugin(library: try Fixtures.library("NotesPlugin"), folder: folder.path)
        case .python: try await RemotePluginProcess.python(folder: folder.path)
        }
        try await stoppingAfterwards({ remote }) {
            try await withHost(configure: { configuration in
                fastRemotes(&configuration)
                if runtime == .worker { configuration.workers.defaultIsolation = .worker }
            }) { host in
                if let remote {
                    try remote.give(installSecret: try await host.install(Fixtures.remote(try Fixtures.notes, url: remote.url)))
                } else {
                    try await host.install(try Fixtures.notes)
                }
                try await host.install(try Fixtures.audit)
                try await host.tenant("acme", workspaces: ["ws1", "ws2"])
                for workspace in ["ws1", "ws2"] {
                    try await host.enable("example.notes", in: workspace, grants: grants, config: config)
                    try await host.enable("example.audit", in: workspace, grants: TestHost.auditGrants)
                }
                try await body(host)
            }
        }
    }

    static func notes(_ workspace: String) -> String { "/v1/workspaces/\(workspace)/plugins/example.notes/resources/notes" }

    @Test("a note is created with 201 and listed, in its own workspace only", arguments: NotesRuntime.allCases)
    func createAndList(runtime: NotesRuntime) async throws {
        try await withNotes(runtime) { host in
            let created = try await host.admin(.POST, Self.notes("ws1"), json: ["text": "Buy milk"])
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json["text"] as? String == "Buy milk")
            #expect(created.json["createdBy"] as? String == "platform-admin")
            let id = try #require(created.json["id"] as? String)
            let listed = try await host.admin(.GET, Self.notes("ws1"))
            #expect(listed.status == 200)
            let notes = listed.json["notes"] as? [[String: any Sendable]] ?? []
            #expect(notes.map { $0["id"] as? String } == [id])
            let other = try await host.admin(.GET, Self.notes("ws2"))
            #expect(other.status == 200)
            #expect((other.json["notes"] as? [Any])?.isEmpty == true)
            // One note by its id, in its own workspace only.
            let one = try await host.admin(.GET, Self.notes("ws1") + "/" + id)
            #expect(one.status == 200, "\(one.text)")
            #expect(one.json["text"] as? String == "Buy milk")
            // The plugin reads `{id}` with `request.parameters`, from the route the host matched; a caller
            // cannot name another route.
            let forged = try await host.admin(.GET, Self.notes("ws1") + "/" + id, headers: ["X-Plugin-Host-Route": "{id}/{other}"])
            #expect(forged.json["text"] as? String == "Buy milk", "\(forged.text)")
            #expect(try await host.admin(.GET, Self.notes("ws2") + "/" + id).errorCode == "NOT_FOUND")
        }
    }

    @Test("notes.created reaches the subscriber in the same workspace, and no other", arguments: NotesRuntime.allCases)
    func eventsStayInTheirWorkspace(runtime: NotesRuntime) async throws {
        try await withNotes(runtime) { host in
            #expect(try await host.admin(.POST, Self.notes("ws1"), json: ["text": "for the audit"]).status == 201)
            let audited = try await eventually {
                let entries = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.audit/resources/entries").json["entries"] as? [[String: any Sendable]] ?? []
                return entries.contains { $0["type"] as? String == "notes.created" && "\($0["payload"] ?? "")".contains("for the audit") }
            }
            #expect(audited)
            let elsewhere = try await host.admin(.GET, "/v1/workspaces/ws2/plugins/example.audit/resources/entries").json["entries"] as? [Any]
            #expect(elsewhere?.isEmpty == true)
        }
    }

    @Test("without storage.write the write is refused with 403 PERMISSION_DENIED; reads still work", arguments: NotesRuntime.allCases)
    func grantsAreEnforced(runtime: NotesRuntime) async throws {
        try await withNotes(runtime, grants: ["storage.read"]) { host in
            let refused = try await host.admin(.POST, Self.notes("ws1"), json: ["text": "nope"])
            #expect(refused.status == 403)
            #expect(refused.errorCode == "PERMISSION_DENIED")
            #expect(try await host.admin(.GET, Self.notes("ws1")).status == 200)
        }
    }

    @Test("bad input and config limits give 400 BAD_REQUEST; roles and workspaces are checked by the host", arguments: NotesRuntime.allCases)
    func badInputAndAccess(runtime: NotesRuntime) async throws {
        try await withNotes(runtime, config: ["maxLength": 5]) { host in
            for body in [Data("not json".utf8), Data(#"{"text": ""}"#.utf8), Data(#"{"text": "too long"}"#.utf8), Data(#"{"note": "x"}"#.utf8)] {
                let reply = try await host.admin(.POST, Self.notes("ws1"), body: body)
                #expect(reply.status == 400, "\(String(decoding: body, as: UTF8.self)) → \(reply.text)")
                #expect(reply.errorCode == "BAD_REQUEST")
            }
            let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
            let own = try await host.request(.POST, Self.notes("ws1"), token: member, json: ["text": "mine"])
            #expect(own.status == 201)
            #expect(own.json["createdBy"] as? String == "member-of-acme")
            #expect(try await host.request(.GET, Self.notes("ws2"), token: member).status == 403)
            #expect(try await host.admin(.DELETE, Self.notes("ws1")).errorCode == "ROUTE_NOT_FOUND")
        }
    }

    @Test("disabling keeps the data: enabled again, the notes are there", arguments: NotesRuntime.allCases)
    func disableKeepsData(runtime: NotesRuntime) async throws {
        try await withNotes(runtime) { host in
            #expect(try await host.admin(.POST, Self.notes("ws1"), json: ["text": "keep me"]).status == 201)
            #expect(try await host.admin(.DELETE, "/v1/workspaces/ws1/plugins/example.notes").status == 204)
            #expect(try await host.admin(.GET, Self.notes("ws1")).errorCode == "PLUGIN_NOT_ENABLED")
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            let notes = try await host.admin(.GET, Self.notes("ws1")).json["notes"] as? [[String: any Sendable]] ?? []
            #expect(notes.map { $0["text"] as? String } == ["keep me"])
        }
    }
}
