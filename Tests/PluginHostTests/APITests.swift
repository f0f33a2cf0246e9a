import Foundation
import PluginHost
import Testing

@Suite("HTTP API")
struct APITests {
    @Test("health, readiness and Prometheus metrics answer without a token")
    func probes() async throws {
        try await withHost { host in
            #expect(try await host.request(.GET, "/health").status == 200)
            #expect(try await host.request(.GET, "/ready").status == 200)
            // In-process: its library is loaded at install (a worker's is loaded when the worker starts).
            try await host.install(try Fixtures.echo, contentType: "application/json", isolation: "in-process")
            let metrics = try await host.request(.GET, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(metrics.text.contains("plugin_host_plugin_load_duration_seconds{plugin=\"example.echo\"}"))
        }
    }

    @Test("requests without a valid token get 401 and the JSON error body with a request id")
    func unauthorized() async throws {
        try await withHost { host in
            for token in [nil, "not-a-token", "ph_abc_def"] {
                let reply = try await host.request(.GET, "/v1/plugins", token: token)
                #expect(reply.status == 401)
                #expect(reply.errorCode == "UNAUTHORIZED")
                let error = reply.json["error"] as? [String: any Sendable]
                #expect((error?["requestId"] as? String) == reply.headers["x-request-id"])
            }
        }
    }

    @Test("a manifest installed over HTTP while the host runs is served at once", arguments: StoreKind.allCases)
    func installWhileRunning(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            let installed = try await host.install(try Fixtures.echo, contentType: "application/json")
            #expect(installed.json["status"] as? String == "loaded")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
            let reply = try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.echo/resources/echo", body: Data("ping \u{0}bytes".utf8), contentType: "application/octet-stream")
            #expect(reply.status == 200)
            #expect(reply.text == "ping \u{0}bytes")
            let list = try await host.admin(.GET, "/v1/plugins")
            #expect((list.json["plugins"] as? [[String: any Sendable]])?.compactMap { $0["id"] as? String } == ["example.echo"])
        }
    }

    @Test("a bad manifest over HTTP lists every problem and installs nothing", arguments: StoreKind.allCases)
    func badManifestInstallsNothing(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            let text = try Fixtures.notes.replacingOccurrences(of: "version: 1.0.0", with: "version: one").replacingOccurrences(of: "storage.write", with: "storage.wipe")
            let reply = try await host.admin(.POST, "/v1/plugins", body: Data(text.utf8), contentType: "application/yaml")
            #expect(reply.status == 400)
            #expect(reply.errorCode == "INVALID_MANIFEST")
            let details = (reply.json["error"] as? [String: any Sendable])?["details"] as? [String] ?? []
            #expect(details.contains { $0.hasPrefix("version (line 4)") })
            #expect(details.contains { $0.hasPrefix("permissions[1]") })
            #expect(try await host.admin(.GET, "/v1/plugins").json["plugins"] as? [Any] != nil)
            #expect((try await host.admin(.GET, "/v1/plugins").json["plugins"] as? [Any])?.isEmpty == true)
            // The same id and version twice: the second install is refused, the first stays.
            try await host.install(try Fixtures.notes)
            let again = try await host.admin(.POST, "/v1/plugins", body: Data(try Fixtures.notes.utf8), contentType: "application/yaml")
            #expect(again.status == 400)
            #expect(again.text.contains("already installed"))
            #expect(try await host.admin(.POST, "/v1/plugins", body: Data("{}".utf8), contentType: "text/html").status == 415)
        }
    }

    @Test("grants beyond what the plugin requests are refused with 400 and change nothing", arguments: StoreKind.allCases)
    func grantsBeyondRequest(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            let reply = try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": ["storage.read", "events.subscribe:billing.*"]])
            #expect(reply.status == 400)
            #expect(reply.errorCode == "GRANT_NOT_REQUESTED")
            #expect(try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": ["root"]]).errorCode == "INVALID_GRANT")
            #expect(try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": [], "config": ["maxLength": "long"]]).errorCode == "INVALID_CONFIG")
            let list = try await host.admin(.GET, "/v1/workspaces/ws1/plugins")
            #expect((list.json["plugins"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("an answer over the host's response limit is 502 RESPONSE_TOO_LARGE naming the limit: in-process, in a worker, and remote")
    func responseSizeLimit() async throws {
        let limit = 4096
        let small = Data(repeating: 0x61, count: 1000), large = Data(repeating: 0x61, count: limit + 1)
        func expectRefused(_ reply: TestHost.Reply, _ why: Comment) {
            #expect(reply.status == 502, why)
            #expect(reply.errorCode == "RESPONSE_TOO_LARGE", why)
            #expect(reply.text.contains("limit of \(limit) bytes") && reply.text.contains("--max-response-size"), why)
        }
        try await withHost(configure: { $0.maxResponseSize = limit }) { host in
            try await host.install(try Fixtures.echo, contentType: "application/json", isolation: "in-process")
            try await host.install(try Fixtures.faulty(isolation: "worker"))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
            try await host.enable("test.faulty", in: "ws1", grants: [])
            let echo = "/v1/workspaces/ws1/plugins/example.echo/resources/echo"
            #expect(try await host.admin(.POST, echo, body: small).status == 200)
            expectRefused(try await host.admin(.POST, echo, body: large), "in-process")
            // In a worker: one just over the limit is refused by the host, one over the worker's frame
            // limit (2 MiB here) by the worker, which is not stopped for it.
            let big = "/v1/workspaces/ws1/plugins/test.faulty/resources/big?bytes="
            let pid = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/pid").json["pid"] as? Int
            #expect(try await host.admin(.GET, big + "1000").status == 200)
            expectRefused(try await host.admin(.GET, big + "\(limit + 1)"), "worker")
            let huge = try await host.admin(.GET, big + "3000000")
            expectRefused(huge, "worker, over its frame limit")
            #expect(huge.text.contains("3000000 bytes"))
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/pid").json["pid"] as? Int == pid)
        }
        // Remote: the host stops reading at the limit.
        let folder = try TemporaryFolder()
        let remote = try await RemotePluginProcess.servePlugin(library: try Fixtures.library("EchoPlugin"), folder: folder.path)
        try await stoppingAfterwards({ remote }) { try await withHost(configure: { $0.maxResponseSize = limit }) { host in
            try remote.give(installSecret: try await host.install(Fixtures.remoteEcho(url: remote.url)))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
            let echo = "/v1/workspaces/ws1/plugins/example.echo/resources/echo"
            #expect(try await host.admin(.POST, echo, body: small).status == 200)
            expectRefused(try await host.admin(.POST, echo, body: large), "remote")
        } }
    }

    @Test("a repeated Idempotency-Key creates one note and answers the first answer; reused for another body it is refused", arguments: StoreKind.allCases)
    func idempotencyKey(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.install(try Fixtures.faulty(isolation: "in-process"))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("test.faulty", in: "ws1", grants: [])
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            let key = ["Idempotency-Key": "create-milk-1"]
            let first = try await host.admin(.POST, notes, json: ["text": "Buy milk"], headers: key)
            #expect(first.status == 201)
            #expect(first.headers["idempotent-replayed"] == nil)
            // The client lost the answer and retries: the same answer, and no second note.
            let again = try await host.admin(.POST, notes, json: ["text": "Buy milk"], headers: key)
            #expect(again.status == 201)
            #expect(again.headers["idempotent-replayed"] == "true")
            #expect(again.json["id"] as? String == first.json["id"] as? String)
            #expect((try await host.admin(.GET, notes).json["notes"] as? [Any])?.count == 1)
            // The same key for another request is a client's mistake, said as such.
            let other = try await host.admin(.POST, notes, json: ["text": "Buy bread"], headers: key)
            #expect(other.status == 422)
            #expect(other.errorCode == "IDEMPOTENCY_KEY_REUSED")
            // Keys are per API token: another token's same key is another key.
            let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
            #expect(try await host.request(.POST, notes, token: member, json: ["text": "Buy milk"], headers: key).status == 201)
            #expect((try await host.admin(.GET, notes).json["notes"] as? [Any])?.count == 2)
            #expect(try await host.admin(.POST, notes, json: ["text": "x"], headers: ["Idempotency-Key": String(repeating: "k", count: 256)]).status == 400)
            // A repeat while the first still runs is told to come back; then it gets the first answer.
            let slow = "/v1/workspaces/ws1/plugins/test.faulty/resources/slow"
            let running = Task { try await host.admin(.POST, slow, body: Data("x".utf8), headers: ["Idempotency-Key": "slow-1"]) }
            try await Task.sleep(for: .milliseconds(300))
            let early = try await host.admin(.POST, slow, body: Data("x".utf8), headers: ["Idempotency-Key": "slow-1"])
            #expect(early.status == 409)
            #expect(early.errorCode == "IDEMPOTENCY_KEY_IN_USE")
            #expect(try await running.value.status == 200)
            let late = try await host.admin(.POST, slow, body: Data("x".utf8), headers: ["Idempotency-Key": "slow-1"])
            #expect(late.status == 200 && late.headers["idempotent-replayed"] == "true")
        }
    }

    @Test("an Idempotency-Key whose request timed out stays taken: a retry cannot run the plugin a second time meanwhile")
    func idempotencyKeyInDoubt() async throws {
        try await withHost(configure: { $0.pluginTimeout = .seconds(1) }) { host in
            try await host.install(try Fixtures.faulty(isolation: "in-process"))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [])
            let key = ["Idempotency-Key": "in-doubt-1"]
            // `hang` ignores cancellation for 3 s: past its time limit it may still be working.
            let hang = "/v1/workspaces/ws1/plugins/test.faulty/resources/hang"
            #expect(try await host.admin(.POST, hang, body: Data("x".utf8), headers: key).errorCode == "PLUGIN_TIMEOUT")
            let retry = try await host.admin(.POST, hang, body: Data("x".utf8), headers: key)
            #expect(retry.errorCode == "IDEMPOTENCY_KEY_IN_USE", "\(retry.text)")
            // A refusal (4xx) by the plugin surely did nothing: the key is given up, and a retry runs again.
            let refused = "/v1/workspaces/ws1/plugins/test.faulty/resources/segfault"  // in-process: 400, it refuses
            #expect(try await host.admin(.POST, refused, body: Data("x".utf8), headers: ["Idempotency-Key": "refused-1"]).status == 400)
            let again = try await host.admin(.POST, refused, body: Data("x".utf8), headers: ["Idempotency-Key": "refused-1"])
            #expect(again.status == 400 && again.headers["idempotent-replayed"] == nil)
        }
    }

    @Test("reconfiguring an enablement keeps what the request leaves out: config alone keeps the grants, grants alone the config", arguments: StoreKind.allCases)
    func reconfigureKeepsTheRest(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            let path = "/v1/workspaces/ws1/plugins/example.notes"
            #expect(try await host.admin(.PUT, path, json: ["grants": ["storage.read", "storage.write"], "config": ["maxLength": 20]]).status == 200)
            let configured = try await host.admin(.PUT, path, json: ["config": ["maxLength": 30]])
            #expect(configured.json["grants"] as? [String] == ["storage.read", "storage.write"])
            #expect((configured.json["config"] as? [String: Any])?["maxLength"] as? Int == 30)
            let regranted = try await host.admin(.PUT, path, json: ["grants": ["storage.read"]])
            #expect(regranted.json["grants"] as? [String] == ["storage.read"])
            #expect((regranted.json["config"] as? [String: Any])?["maxLength"] as? Int == 30)
            // The grants in use follow: a write is refused now, with the grant it needs named.
            let write = try await host.admin(.POST, path + "/resources/notes", json: ["text": "hi"])
            #expect(write.errorCode == "PERMISSION_DENIED")
            let revoked = try await host.admin(.PUT, path, json: ["grants": []])
            #expect(revoked.json["grants"] as? [String] == [])

            // The CLI sends only what it is given: --config alone keeps the grants.
            #expect(try await host.admin(.PUT, path, json: ["grants": ["storage.read"]]).status == 200)
            let cli = HostProcess.executable
            try #require(FileManager.default.isExecutableFile(atPath: cli), "build the CLI first (make test does)")
            let connection = ["--url", "http://127.0.0.1:\(host.port)", "--token", host.adminToken]
            let viaCLI = try await runCommand(cli, ["enable", "ws1", "example.notes", "--config", #"{"maxLength": 40}"#] + connection)
            #expect(viaCLI.status == 0, "\(viaCLI.output)")
            #expect(viaCLI.output.contains("with grants: storage.read"), "\(viaCLI.output)")
            let after = try await host.admin(.GET, "/v1/workspaces/ws1/plugins").json["plugins"] as? [[String: any Sendable]]
            #expect(after?.first?["grants"] as? [String] == ["storage.read"])
            #expect(try await runCommand(cli, ["enable", "ws1", "example.notes", "--no-grants"] + connection).output.contains("with grants: none"))
        }
    }

    @Test("an SDK call beyond the grants fails inside the plugin with 403 PERMISSION_DENIED", arguments: StoreKind.allCases)
    func permissionDeniedInsidePlugin(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: ["storage.read"])
            let write = try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "hi"])
            #expect(write.status == 403)
            #expect(write.errorCode == "PERMISSION_DENIED")
            #expect(write.text.contains("storage.write"))
            // It says what to do: the manifest requests it, a tenant admin grants it.
            #expect(write.text.contains("its manifest must request it"))
            #expect(write.text.contains("--grant storage.write"))
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.notes/resources/notes").status == 200)
            // Writing is granted, publishing is not: the note is refused at publish.
            try await host.enable("example.notes", in: "ws1", grants: ["storage.read", "storage.write"])
            let publish = try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "hi"])
            #expect(publish.status == 403)
            #expect(publish.text.contains("events.publish:notes.created"))
        }
    }

    @Test("error paths: 404 not enabled, 404 unknown route, 413 body too large")
    func errorPaths() async throws {
        try await withHost(configure: { $0.maxBodySize = 1024 }) { host in
            try await host.install(try Fixtures.echo, contentType: "application/json")
            try await host.tenant("acme", workspaces: ["ws1"])
            let notEnabled = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.echo/resources/echo")
            #expect(notEnabled.status == 404)
            #expect(notEnabled.errorCode == "PLUGIN_NOT_ENABLED")
            try await host.enable("example.echo", in: "ws1", grants: [])
            let undeclared = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.echo/resources/elsewhere")
            #expect(undeclared.errorCode == "ROUTE_NOT_FOUND")
            // It says what to do: declare the route in the manifest.
            #expect(undeclared.text.contains("routes its manifest declares"))
            #expect(try await host.admin(.GET, "/v1/workspaces/nowhere/plugins/example.echo/resources/echo").errorCode == "WORKSPACE_NOT_FOUND")
            let large = try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.echo/resources/echo", body: Data(count: 4096), contentType: "application/octet-stream")
            #expect(large.status == 413)
            #expect(large.errorCode == "PAYLOAD_TOO_LARGE")
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.echo/resources/echo", body: Data(count: 1024), contentType: "application/octet-stream").status == 200)
            #expect(try await host.admin(.GET, "/v2/nothing").errorCode == "NOT_FOUND")
        }
    }

    @Test("a resource path answers the same whether the host matches it ahead of the router or the router resolves it")
    func resourcePathsAgree() async throws {
        try await withHost { host in
            try await host.install(try Fixtures.echo, contentType: "application/json")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
            let base = "/v1/workspaces/ws1/plugins/example.echo/resources"
            // The first is matched ahead of the router; the others have empty components, which the router resolves.
            for path in [base + "/echo", base + "//echo", base + "/echo/"] {
                let reply = try await host.admin(.POST, path, body: Data("hello".utf8), contentType: "text/plain")
                #expect(reply.status == 200, "\(path)")
                #expect(reply.text == "hello", "\(path)")
                #expect(reply.headers["x-request-id"] != nil, "\(path)")
            }
            #expect(try await host.request(.POST, base + "/echo", body: Data("hello".utf8), contentType: "text/plain").status == 401)
            #expect(try await host.request(.POST, base + "/echo", token: "wrong", body: Data("hello".utf8), contentType: "text/plain").errorCode == "UNAUTHORIZED")
            #expect(try await host.admin(.GET, "/v1/workspaces/nowhere/plugins/example.echo/resources/echo").errorCode == "WORKSPACE_NOT_FOUND")
        }
    }

    @Test("a plugin that throws gets 500 PLUGIN_ERROR without its details, and the host keeps serving")
    func pluginThrows() async throws {
        try await withHost { host in
            try await host.install(try Fixtures.faulty())
            try await host.install(try Fixtures.echo, contentType: "application/json")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [])
            try await host.enable("example.echo", in: "ws1", grants: [])
            let thrown = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/throw")
            #expect(thrown.status == 500)
            #expect(thrown.errorCode == "PLUGIN_ERROR")
            #expect(!thrown.text.contains("internal detail"))
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/status").errorCode == "PLUGIN_ERROR")
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.echo/resources/echo").status == 200)
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/fine").status == 200)
            let metrics = try await host.request(.GET, "/metrics").text
            #expect(metrics.contains("plugin_host_plugin_errors_total{plugin=\"test.faulty\",kind=\"error\"} 2"))
        }
    }

    @Test("a plugin over its timeout gets 504 PLUGIN_TIMEOUT at the timeout, and the host keeps serving")
    func pluginTimeout() async throws {
        try await withHost(configure: { $0.pluginTimeout = .milliseconds(300) }) { host in
            // In-process, where the timeout abandons a call it cannot stop (in a worker it stops the worker:
            // WorkerTests.endlessLoop).
            try await host.install(try Fixtures.faulty(isolation: "in-process"))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [])
            let started = ContinuousClock.now
            let reply = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/hang")
            let elapsed = ContinuousClock.now - started
            #expect(reply.status == 504)
            #expect(reply.errorCode == "PLUGIN_TIMEOUT")
            #expect(elapsed < .seconds(2), "answered after \(elapsed), the plugin hangs 3 s")
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/fine").status == 200)
        }
    }

    @Test("on PostgreSQL a plugin granted storage runs on the pool's threads, others on Swift's; the timeout holds on both", arguments: StoreKind.allCases)
    func pluginExecutor(store: StoreKind) async throws {
        try await withHost(store: store, configure: { $0.pluginTimeout = .milliseconds(300) }) { host in
            // What runs in this process: the executors are the host's.
            try await host.install(try Fixtures.faulty(isolation: "in-process"))
            try await host.tenant("acme", workspaces: ["ws1", "ws2"])
            try await host.enable("test.faulty", in: "ws1", grants: ["storage.read"])
            try await host.enable("test.faulty", in: "ws2", grants: [])
            let grantedReply = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/thread")
            let granted = grantedReply.json["thread"] as? String
            let plain = try await host.admin(.GET, "/v1/workspaces/ws2/plugins/test.faulty/resources/thread").json["thread"] as? String
            #expect(granted?.hasPrefix("pq-pool-") == (store == .postgres), "ran on \(granted ?? "-"): \(grantedReply.text)")
            #expect(plain?.hasPrefix("pq-pool-") == false, "ran on \(plain ?? "-")")
            // Past its timeout, a call running on the pool's threads gets 504, and the host serves on.
            let started = ContinuousClock.now
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/hang").errorCode == "PLUGIN_TIMEOUT")
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/fine").status == 200)
        }
    }

    @Test("an enabled hook that refuses leaves the plugin disabled; disabling keeps the data", arguments: StoreKind.allCases)
    func lifecycleHooks(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.faulty())
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            let refused = try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/test.faulty", json: ["grants": [], "config": ["refuse": true]])
            #expect(refused.status == 400)
            #expect(refused.text.contains("refusing to be enabled"))
            #expect((try await host.admin(.GET, "/v1/workspaces/ws1/plugins").json["plugins"] as? [Any])?.isEmpty == true)

            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "kept"]).status == 201)
            #expect(try await host.admin(.DELETE, "/v1/plugins/example.notes").errorCode == "PLUGIN_IN_USE")
            #expect(try await host.admin(.DELETE, "/v1/workspaces/ws1/plugins/example.notes").status == 204)
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.notes/resources/notes").errorCode == "PLUGIN_NOT_ENABLED")
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            let notes = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.notes/resources/notes")
            #expect((notes.json["notes"] as? [[String: any Sendable]])?.first?["text"] as? String == "kept")
        }
    }

    @Test("members use their workspaces' plugins but not admin routes; tenant admins administer only their tenant", arguments: StoreKind.allCases)
    func roles(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1", "ws2"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("example.notes", in: "ws2", grants: TestHost.notesGrants)
            let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
            let admin = try await host.token(tenant: "acme", role: "tenant-admin")
            #expect(try await host.request(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: member, json: ["text": "m"]).status == 201)
            #expect(try await host.request(.GET, "/v1/workspaces/ws2/plugins/example.notes/resources/notes", token: member).status == 403)
            #expect(try await host.request(.PUT, "/v1/workspaces/ws1/plugins/example.notes", token: member, json: ["grants": []]).status == 403)
            #expect(try await host.request(.GET, "/v1/plugins", token: member).status == 403)
            #expect(try await host.request(.POST, "/v1/tenants", token: admin, json: ["id": "evil", "name": "x"]).status == 403)
            #expect(try await host.request(.POST, "/v1/tenants/acme/workspaces", token: admin, json: ["id": "ws3", "name": "three"]).status == 201)
            let notes = try await host.request(.GET, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: admin)
            #expect((notes.json["notes"] as? [[String: any Sendable]])?.first?["createdBy"] as? String == "member-of-acme")
            #expect(try await host.request(.POST, "/v1/tenants/acme/tokens", token: admin, json: ["role": "platform-admin", "subject": "x"]).status == 400)
            #expect(try await host.request(.POST, "/v1/tenants/acme/tokens", token: admin, json: ["role": "member", "subject": "x"]).status == 400)
        }
    }

    @Test("a tenant admin lists the tenant's tokens without their secrets and revokes one, which is refused from the next request on", arguments: StoreKind.allCases)
    func tokenRevocation(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.tenant("other", workspaces: ["wsx"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
            let admin = try await host.token(tenant: "acme", role: "tenant-admin")
            let otherAdmin = try await host.token(tenant: "other", role: "tenant-admin")
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            // Used once, so the host has it cached when it is revoked.
            #expect(try await host.request(.GET, notes, token: member).status == 200)

            let listed = try await host.request(.GET, "/v1/tenants/acme/tokens", token: admin)
            #expect(listed.status == 200)
            let tokens = listed.json["tokens"] as? [[String: any Sendable]] ?? []
            #expect(tokens.map { $0["subject"] as? String } == ["member-of-acme", "tenant-admin-of-acme"])
            #expect(tokens.first?["workspaces"] as? [String] == ["ws1"])
            #expect(tokens.allSatisfy { $0["token"] == nil })
            let memberID = try #require(tokens.first?["id"] as? String)
            let adminID = try #require(tokens.last?["id"] as? String)
            // The secret part of each token (after `ph_<id>_`) appears nowhere in the answer.
            #expect(!listed.text.contains(member.dropFirst("ph_\(memberID)_".count)))
            #expect(!listed.text.contains(admin.dropFirst("ph_\(adminID)_".count)))
            #expect(member.hasPrefix("ph_\(memberID)_") && admin.hasPrefix("ph_\(adminID)_"))

            // Only the tenant's admins: a member gets 403, another tenant's admin sees no such tenant.
            #expect(try await host.request(.GET, "/v1/tenants/acme/tokens", token: member).status == 403)
            #expect(try await host.request(.GET, "/v1/tenants/acme/tokens", token: otherAdmin).errorCode == "TENANT_NOT_FOUND")
            #expect(try await host.request(.DELETE, "/v1/tenants/acme/tokens/\(memberID)", token: otherAdmin).errorCode == "TENANT_NOT_FOUND")
            #expect(try await host.request(.DELETE, "/v1/tenants/other/tokens/\(memberID)", token: otherAdmin).errorCode == "TOKEN_NOT_FOUND")
            #expect(try await host.request(.GET, notes, token: member).status == 200)

            let revoked = try await host.request(.DELETE, "/v1/tenants/acme/tokens/\(memberID)", token: admin)
            #expect(revoked.status == 204)
            #expect(try await host.request(.GET, notes, token: member).status == 401)
            #expect(try await host.request(.DELETE, "/v1/tenants/acme/tokens/\(memberID)", token: admin).errorCode == "TOKEN_NOT_FOUND")
            let after = try await host.request(.GET, "/v1/tenants/acme/tokens", token: admin).json["tokens"] as? [[String: any Sendable]] ?? []
            #expect(after.map { $0["subject"] as? String } == ["tenant-admin-of-acme"])
            #expect(try await host.request(.GET, notes, token: admin).status == 200)
        }
    }

    @Test("a platform admin makes another platform token, lists them without secrets and revokes one, but never the last", arguments: StoreKind.allCases)
    func platformTokens(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.tenant("acme", workspaces: ["ws1"])
            let tenantAdmin = try await host.token(tenant: "acme", role: "tenant-admin")
            let made = try await host.admin(.POST, "/v1/tokens", json: ["subject": "ops-oncall"])
            #expect(made.status == 201)
            #expect(made.json["role"] as? String == "platform-admin" && made.json["tenantId"] == nil)
            let second = try #require(made.json["token"] as? String)
            let secondID = try #require(made.json["id"] as? String)
            #expect(try await host.request(.GET, "/v1/plugins", token: second).status == 200)

            let listed = try await host.request(.GET, "/v1/tokens", token: second)
            let tokens = listed.json["tokens"] as? [[String: any Sendable]] ?? []
            // The host's own admin token (given with --admin-token), then the new one; no tenant's token.
            #expect(tokens.map { $0["subject"] as? String } == ["platform-admin", "ops-oncall"])
            #expect(tokens.allSatisfy { $0["token"] == nil && $0["tenantId"] == nil })
            #expect(!listed.text.contains(second.dropFirst("ph_\(secondID)_".count)))
            #expect(!listed.text.contains(host.adminToken))
            let firstID = try #require(tokens.first?["id"] as? String)

            // Only platform admins; tenant and platform tokens stay apart.
            let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
            #expect(try await host.request(.GET, "/v1/tokens", token: member).status == 403)
            #expect(try await host.request(.DELETE, "/v1/tokens/\(secondID)", token: member).status == 403)
            let tenantTokens = try await host.request(.GET, "/v1/tenants/acme/tokens", token: tenantAdmin).json["tokens"] as? [[String: any Sendable]] ?? []
            #expect(tenantTokens.map { $0["subject"] as? String } == ["tenant-admin-of-acme", "member-of-acme"])
            #expect(try await host.request(.DELETE, "/v1/tenants/acme/tokens/\(secondID)", token: tenantAdmin).errorCode == "TOKEN_NOT_FOUND")
            #expect(try await host.request(.GET, "/v1/tokens", token: tenantAdmin).status == 403)
            #expect(try await host.request(.POST, "/v1/tokens", token: tenantAdmin, json: ["subject": "x"]).status == 403)
            #expect(try await host.request(.DELETE, "/v1/tokens/\(secondID)", token: tenantAdmin).status == 403)
            #expect(try await host.admin(.POST, "/v1/tokens", json: ["subject": ""]).errorCode == "BAD_REQUEST")

            // Rotation: the new token revokes the old one, which is refused from the next request on.
            #expect(try await host.request(.DELETE, "/v1/tokens/\(firstID)", token: second).status == 204)
            #expect(try await host.request(.GET, "/v1/plugins", token: host.adminToken).status == 401)
            #expect(try await host.request(.DELETE, "/v1/tokens/\(firstID)", token: second).errorCode == "TOKEN_NOT_FOUND")
            // A tenant's token is not a platform token, whatever its id.
            let tenantTokenID = try #require((try await host.request(.GET, "/v1/tenants/acme/tokens", token: second).json["tokens"] as? [[String: any Sendable]])?
                .first?["id"] as? String)
            #expect(try await host.request(.DELETE, "/v1/tokens/\(tenantTokenID)", token: second).errorCode == "TOKEN_NOT_FOUND")
            #expect(try await host.request(.GET, "/v1/tenants/acme/tokens", token: tenantAdmin).status == 200)
            // The last one stays.
            let last = try await host.request(.DELETE, "/v1/tokens/\(secondID)", token: second)
            #expect(last.status == 409 && last.errorCode == "LAST_PLATFORM_TOKEN")
            #expect(try await host.request(.GET, "/v1/plugins", token: second).status == 200)
            // Also when the last two revoke each other at once: one of them stays, every time.
            var survivor = second
            for _ in 0..<8 {
                let other = try #require(try await host.request(.POST, "/v1/tokens", token: survivor, json: ["subject": "pair"]).json["token"] as? String)
                let ids = try await host.request(.GET, "/v1/tokens", token: survivor).json["tokens"] as? [[String: any Sendable]] ?? []
                let (survivorID, otherID) = try (#require(ids.first?["id"] as? String), #require(ids.last?["id"] as? String))
                let current = survivor
                async let first = host.request(.DELETE, "/v1/tokens/\(otherID)", token: current)
                async let other2 = host.request(.DELETE, "/v1/tokens/\(survivorID)", token: other)
                // One revoke wins. The other is refused as the last token's (409), or, when it
                // arrives after the first has finished, as a revoked caller's (401).
                let statuses = try await [first.status, other2.status].sorted()
                #expect(statuses == [204, 409] || statuses == [204, 401], "\(statuses)")
                survivor = try await host.request(.GET, "/v1/plugins", token: survivor).status == 200 ? survivor : other
                #expect((try await host.request(.GET, "/v1/tokens", token: survivor).json["tokens"] as? [[String: any Sendable]])?.count == 1)
            }
        }
    }

    @Test("token ids never start with a dash, which a command line would read as an option")
    func tokenIDs() {
        // One id in 64 would, were they not redrawn: 2,000 ids all pass by chance with a probability of 1e-14.
        #expect((0..<2000).allSatisfy { _ in !APIToken.mint().id.hasPrefix("-") })
    }

    @Test("`plugin-host tokens list`, `create` and `revoke` list without secrets and revoke over the API, for a tenant and for the platform")
    func tokenCommands() async throws {
        let cli = HostProcess.executable
        try #require(FileManager.default.isExecutableFile(atPath: cli), "build the CLI first (make test does)")
        try await withHost { host in
            try await host.tenant("acme", workspaces: ["ws1"])
            let created = try await host.admin(.POST, "/v1/tenants/acme/tokens", json: ["role": "member", "subject": "member-of-acme", "workspaces": ["ws1"]])
            let member = try #require(created.json["token"] as? String)
            let id = try #require(created.json["id"] as? String)
            func cliRun(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                try await runCommand("/usr/bin/env", ["PLUGIN_HOST_URL=http://127.0.0.1:\(host.port)", "PLUGIN_HOST_TOKEN=\(host.adminToken)", cli] + arguments)
            }
            let listed = try await cliRun(["tokens", "list", "--tenant", "acme"])
            #expect(listed.status == 0, "\(listed.output)")
            #expect(listed.output.contains("member-of-acme") && listed.output.contains("ws1"))
            #expect(!listed.output.contains(member.dropFirst("ph_\(id)_".count)))
            #expect(listed.output.contains(id))
            let revoked = try await cliRun(["tokens", "revoke", "--tenant", "acme", "--", id])
            #expect(revoked.status == 0 && revoked.output.contains("revoked token \(id)"), "\(revoked.output)")
            #expect(try await host.request(.GET, "/v1/tenants/acme/workspaces", token: member).status == 401)
            let again = try await cliRun(["tokens", "revoke", "--tenant", "acme", id])
            #expect(again.status != 0 && again.output.contains("TOKEN_NOT_FOUND"), "\(again.output)")

            // Without --tenant: platform admin tokens.
            let made = try await cliRun(["tokens", "create", "--role", "platform-admin", "--subject", "ops-oncall"])
            #expect(made.status == 0 && made.output.contains("shown once"), "\(made.output)")
            let platformTokens = try await host.admin(.GET, "/v1/tokens").json["tokens"] as? [[String: any Sendable]] ?? []
            let platformID = try #require(platformTokens.first { $0["subject"] as? String == "ops-oncall" }?["id"] as? String)
            _ = try await host.token(tenant: "acme", role: "tenant-admin")
            let platform = try await cliRun(["tokens", "list"])
            #expect(platform.status == 0 && platform.output.contains("ops-oncall") && platform.output.contains(platformID), "\(platform.output)")
            #expect(!platform.output.contains("tenant-admin-of-acme"))
            let misplaced = try await cliRun(["tokens", "create", "--role", "member", "--subject", "x"])
            #expect(misplaced.status != 0 && misplaced.output.contains("needs --tenant"), "\(misplaced.output)")
            let dropped = try await cliRun(["tokens", "revoke", "--", platformID])
            #expect(dropped.status == 0 && dropped.output.contains("revoked platform admin token \(platformID)"), "\(dropped.output)")
        }
    }

    @Test("config values the manifest marks secret are never echoed by the API")
    func secretConfigMasked() async throws {
        try await withHost { host in
            try await host.install(try Fixtures.faulty())
            try await host.tenant("acme", workspaces: ["ws1"])
            let enabled = try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/test.faulty", json: ["grants": [], "config": ["apiKey": "s3cret-value"]])
            #expect(enabled.status == 200)
            let listed = try await host.admin(.GET, "/v1/workspaces/ws1/plugins")
            for reply in [enabled, listed] {
                #expect(!reply.text.contains("s3cret-value"))
                #expect(reply.text.contains("********"))
            }
        }
    }
}
