import Foundation
import Logging
@testable import PluginHost
import ServiceLifecycle
import Synchronization
import Testing

@Suite("PostgreSQL store")
struct PostgresTests {
    @Test("row-level security: without the workspace set a query sees and writes no plugin data, even as the tables' owner")
    func rowLevelSecurity() async throws {
        let folder = try TemporaryFolder()
        try await withDatabase(.postgres) { database in
            let database = try #require(database)
            try await TestHost.running(data: folder.path, postgres: database.hostConfiguration()) { host in
                try await host.install(try Fixtures.notes)
                try await host.tenant("acme", workspaces: ["ws-a", "ws-b"])
                for workspace in ["ws-a", "ws-b"] {
                    try await host.enable("example.notes", in: workspace, grants: TestHost.notesGrants)
                    #expect(try await host.admin(.POST, "/v1/workspaces/\(workspace)/plugins/example.notes/resources/notes", json: ["text": workspace]).status == 201)
                }
            }

            let count = PostgresStatement("SELECT count(*) FROM kv")
            // The data is there: a superuser (exempt from RLS) sees both notes.
            #expect(try await database.query(as: database.superuserURL, [count])[0].first?[0] == .int(2))
            // The serving role and the owner see nothing without the workspace set.
            for role in [database.servingURL, database.ownerURL] {
                #expect(try await database.query(as: role, [count])[0].first?[0] == .int(0))
                #expect(try await database.query(as: role, [PostgresStatement("SELECT count(*) FROM enablements")])[0].first?[0] == .int(0))
            }
            // With ws-a set, only ws-a's row; writes aimed at ws-b touch nothing.
            let scoped = try await database.query(as: database.servingURL, [
                PostgresStatement("BEGIN"),
                PostgresStatement("SELECT set_config('plugin_host.workspace', 'ws-a', true), set_config('plugin_host.plugin', 'example.notes', true)"),
                PostgresStatement("SELECT workspace_id FROM kv"),
                PostgresStatement("UPDATE kv SET value = '\\x00'::bytea WHERE workspace_id = 'ws-b' RETURNING key"),
                PostgresStatement("DELETE FROM kv WHERE workspace_id = 'ws-b' RETURNING key"),
                PostgresStatement("COMMIT"),
            ])
            #expect(scoped[2].map { $0[0] } == [.text("ws-a")])
            #expect(scoped[3].isEmpty && scoped[4].isEmpty)
            // The setting lasts for its own transaction only: the next one on the same connection sees nothing.
            let serving = database.servingURL
            let (inside, after) = try await TestPostgres.blocking {
                let connection = try PostgresConnection(url: serving, statementTimeout: .seconds(10))
                let inside = try connection.pipeline([
                    PostgresStatement("SELECT set_config('plugin_host.workspace', 'ws-a', true), set_config('plugin_host.plugin', 'example.notes', true)"),
                    count,
                ])[1]
                return (inside, try connection.pipeline([count])[0])
            }
            #expect(inside.first?[0] == .int(1) && after.first?[0] == .int(0))
            // Inserting without the workspace set is refused by the policy, and the serving role cannot turn RLS off.
            let insert = PostgresStatement("INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES ('ws-b', 'example.notes', 'x'::bytea, 'x'::bytea, 1, 0)")
            await #expect { try await database.query(as: database.servingURL, [insert]) } throws: { ($0 as? PostgresError)?.sqlState == "42501" }
            await #expect { try await database.query(as: database.servingURL, [PostgresStatement("ALTER TABLE kv DISABLE ROW LEVEL SECURITY")]) } throws: {
                ($0 as? PostgresError)?.sqlState == "42501"
            }
            #expect(try await database.query(as: database.superuserURL, [count])[0].first?[0] == .int(2))
        }
    }

    @Test("a connection whose server process ended is found dead before it carries a call")
    func staleConnection() async throws {
        try await withDatabase(.postgres) { database in
            let database = try #require(database)
            let (serving, superuser) = (database.servingURL, database.superuserURL)
            let (before, after) = try await TestPostgres.blocking {
                let connection = try PostgresConnection(url: serving, statementTimeout: .seconds(10))
                let pid = try connection.query("SELECT pg_backend_pid()::bigint").first?[0]
                let before = connection.checkAlive()
                // As in a restart: the server process sends its last error message, then closes.
                let admin = try PostgresConnection(url: superuser, statementTimeout: .seconds(10))
                try admin.query("SELECT pg_terminate_backend($1::int)", [pid ?? .null])
                Thread.sleep(forTimeInterval: 0.3)
                return (before, connection.checkAlive())
            }
            #expect(before)
            #expect(!after)
        }
    }

    @Test("a database password never reaches an error message, raw, percent-decoded or as password=")
    func passwordRedaction() {
        let url = "postgresql://app:50%off%40x@db.example:5432/plugin_host"
        let message = #"invalid percent-encoded token: "50%off%40x"; decoded 50%off@x; password=50%off%40x"#
        let redacted = redactingPassword(of: url, in: message)
        #expect(!redacted.contains("50%off"))
        #expect(!redactedDatabaseURL("postgresql://app:s3cret@db/x").contains("s3cret"))
        #expect(!redactedDatabaseURL("host=db user=app password='s3 cret' dbname=x").contains("s3"))
    }

    @Test("a serving role that bypasses row-level security is refused with a clear error")
    func superuserRefused() async throws {
        let folder = try TemporaryFolder()
        try await withDatabase(.postgres) { database in
            var configuration = HostConfiguration(dataDirectory: folder.path, port: 0, adminToken: "admin-token")
            configuration.postgres = PostgresConfiguration(url: try #require(database).superuserURL, poolSize: 2)
            var logger = Logger(label: "test-host")
            logger.logLevel = .critical
            let app = try await buildApplication(configuration: configuration, logger: logger)
            let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
            await #expect { try await group.run() } throws: { "\($0)".contains("BYPASSRLS") }
        }
    }

    @Test("two host processes on one database: what one installs and enables the other serves within a second; a token one revokes the other refuses within 5 s",
          .timeLimit(.minutes(2)))
    func twoHosts() async throws {
        let database = try await TestDatabase.create()
        let folder = try TemporaryFolder()
        var hosts: [HostProcess] = []
        do {
            // Started together on an empty database: the migration lock makes one of them migrate.
            let root = folder.path
            async let first = started { try await HostProcess.start(data: root + "/a", postgres: database, log: root + "/a.log") }
            async let second = started { try await HostProcess.start(data: root + "/b", postgres: database, log: root + "/b.log") }
            let results = await [first, second]
            hosts = results.compactMap { try? $0.get() }
            let (a, b) = (try results[0].get(), try results[1].get())

            #expect(try await a.admin(.POST, "/v1/plugins", body: Data(try Fixtures.notes.utf8), contentType: "application/yaml").status == 201)
            #expect(try await a.admin(.POST, "/v1/tenants", json: ["id": "acme", "name": "Acme"]).status == 201)
            #expect(try await a.admin(.POST, "/v1/tenants/acme/workspaces", json: ["id": "ws1", "name": "One"]).status == 201)
            let enable = try await a.admin(.PUT, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": TestHost.notesGrants])
            #expect(enable.status == 200, "\(enable.text)")
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            let servedByB = try await eventually(timeout: .seconds(1)) { try await b.admin(.POST, notes, json: ["text": "via b"]).status == 201 }
            #expect(servedByB, "host B did not serve the plugin host A enabled within 1 s")
            // Both read the same data.
            #expect((try await a.admin(.GET, notes).json["notes"] as? [Any])?.count == 1)

            // The other way round: B installs and enables, A serves.
            #expect(try await b.admin(.POST, "/v1/plugins", body: Data(try Fixtures.audit.utf8), contentType: "application/yaml").status == 201)
            #expect(try await b.admin(.PUT, "/v1/workspaces/ws1/plugins/example.audit", json: ["grants": TestHost.auditGrants]).status == 200)
            let servedByA = try await eventually(timeout: .seconds(1)) {
                try await a.admin(.GET, "/v1/workspaces/ws1/plugins/example.audit/resources/entries").status == 200
            }
            #expect(servedByA, "host A did not serve the plugin host B enabled within 1 s")
            // And a disable through A stops B from serving it.
            #expect(try await a.admin(.DELETE, "/v1/workspaces/ws1/plugins/example.notes").status == 204)
            #expect(try await eventually(timeout: .seconds(1)) { try await b.admin(.GET, notes).errorCode == "PLUGIN_NOT_ENABLED" })

            // A token revoked through A, which B has cached, is refused by B within the cache lifetime (5 s).
            let minted = try await a.admin(.POST, "/v1/tenants/acme/tokens", json: ["role": "member", "subject": "m", "workspaces": ["ws1"]])
            let member = try #require(minted.json["token"] as? String)
            let memberID = try #require(minted.json["id"] as? String)
            let workspaces = "/v1/tenants/acme/workspaces"
            #expect(try await b.request(.GET, workspaces, token: member).status == 200)
            #expect(try await a.admin(.DELETE, "/v1/tenants/acme/tokens/\(memberID)").status == 204)
            #expect(try await a.request(.GET, workspaces, token: member).status == 401)
            let refusedByB = try await eventually(timeout: .seconds(7)) { try await b.request(.GET, workspaces, token: member).status == 401 }
            #expect(refusedByB, "host B still accepted the token host A revoked after 7 s")
        } catch {
            Issue.record("host logs:\n\((try? String(contentsOfFile: folder.path + "/a.log", encoding: .utf8)) ?? "")\n\((try? String(contentsOfFile: folder.path + "/b.log", encoding: .utf8)) ?? "")")
            for host in hosts { await host.terminate() }
            await database.drop()
            throw error
        }
        for host in hosts { await host.terminate() }
        await database.drop()
    }

    @Test("two hosts on one database deliver every event of notes created through both, almost never twice; one killed leaves its lanes to the other",
          .timeLimit(.minutes(2)))
    func twoHostsDeliverEvents() async throws {
        let database = try await TestDatabase.create()
        let folder = try TemporaryFolder()
        var hosts: [HostProcess] = []
        do {
            let root = folder.path
            let flags = ["--plugin-timeout", "2", "--event-lease", "3"]
            let a = try await HostProcess.start(data: root + "/a", postgres: database, log: root + "/a.log", arguments: flags)
            hosts.append(a)
            let b = try await HostProcess.start(data: root + "/b", postgres: database, log: root + "/b.log", arguments: flags)
            hosts.append(b)
            #expect(try await a.admin(.POST, "/v1/plugins", body: Data(try Fixtures.notes.utf8), contentType: "application/yaml").status == 201)
            #expect(try await a.admin(.POST, "/v1/plugins", body: Data(try Fixtures.faulty().utf8), contentType: "application/yaml").status == 201)
            #expect(try await a.admin(.POST, "/v1/tenants", json: ["id": "acme", "name": "Acme"]).status == 201)
            #expect(try await a.admin(.POST, "/v1/tenants/acme/workspaces", json: ["id": "ws1", "name": "One"]).status == 201)
            #expect(try await a.admin(.PUT, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": TestHost.notesGrants]).status == 200)
            let faulty = try await a.admin(.PUT, "/v1/workspaces/ws1/plugins/test.faulty", json: ["grants": EventTests.faultyGrants, "config": ["eventFailures": 0]])
            #expect(faulty.status == 200, "\(faulty.text)")
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            #expect(try await eventually(timeout: .seconds(2)) { try await b.admin(.GET, notes).status == 200 })

            func create(_ count: Int, through targets: [HostProcess]) async throws {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, host) in targets.enumerated() {
                        group.addTask { () async throws -> Void in
                            for note in 0..<count {
                                let reply = try await host.admin(.POST, notes, json: ["text": "h\(index)-\(note)"])
                                #expect(reply.status == 201, "\(reply.text)")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            /// Deliveries the subscriber took, per event.
            func received() async throws -> [String: Int] {
                try await b.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/received").json as? [String: Int] ?? [:]
            }
            try await create(30, through: [a, b])
            #expect(try await eventually(timeout: .seconds(15)) { try await received().count == 60 })
            let before = try await received()
            #expect(before.values.reduce(0, +) <= 61, "delivered more than once: \(before.filter { $0.value > 1 })")

            // A dies; what is created through B is delivered by B, after A's leases expire if A held the lane.
            await a.kill()
            hosts.removeFirst()
            try await create(20, through: [b])
            let caughtUp = try await eventually(timeout: .seconds(20)) { try await received().count == 80 }
            let count = try await received().count
            #expect(caughtUp, "\(count) of 80 events delivered")
            let after = try await received()
            #expect(after.values.reduce(0, +) <= 82, "delivered more than once: \(after.filter { $0.value > 1 })")
        } catch {
            Issue.record("host logs:\n\((try? String(contentsOfFile: folder.path + "/a.log", encoding: .utf8)) ?? "")\n\((try? String(contentsOfFile: folder.path + "/b.log", encoding: .utf8)) ?? "")")
            for host in hosts { await host.terminate() }
            await database.drop()
            throw error
        }
        for host in hosts { await host.terminate() }
        await database.drop()
    }

    @Test("PostgreSQL down at start or restarted while serving: 503 STORE_UNAVAILABLE at once, then served again without a host restart; stopped 5 s under load, every note's event is delivered",
          .timeLimit(.minutes(3)))
    func outageRecovery() async throws {
        let folder = try TemporaryFolder()
        let script = Fixtures.root.appendingPathComponent("Tests/support/throwaway-postgres.sh").path
        let cluster = folder.path + "/pg"
        func postgres(_ command: String) async throws -> String {
            var result = try await runCommand("/bin/bash", [script, command, cluster])
            // While the server is down, another test's process may hold its port for a moment (CI, stop 20).
            for _ in 0..<20 where command == "start" && result.status != 0 && result.output.contains("Address already in use") {
                try await Task.sleep(for: .milliseconds(500))
                result = try await runCommand("/bin/bash", [script, command, cluster])
            }
            try #require(result.status == 0, "throwaway-postgres.sh \(command) failed: \(result.output)")
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let server = try await postgres("start")
        let database = try await TestDatabase.create(serverURL: server)
        _ = try await postgres("stop")
        var host: TestHost?
        do {
            // Unreachable at start: the host serves 503 and retries with backoff.
            let started = try await TestHost.start(data: folder.path, postgres: database.hostConfiguration(), waitUntilReady: false)
            host = started
            #expect(try await started.request(.GET, "/ready").status == 503)
            let early = try await started.admin(.GET, "/v1/plugins")
            #expect(early.status == 503 && early.errorCode == "STORE_UNAVAILABLE")

            _ = try await postgres("start")
            #expect(try await eventually(timeout: .seconds(30)) { try await started.request(.GET, "/ready").status == 200 })
            try await started.install(try Fixtures.notes)
            try await started.tenant("acme", workspaces: ["ws1"])
            try await started.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            #expect(try await started.admin(.POST, notes, json: ["text": "before"]).status == 201)

            // Restarted under the host: requests fail fast with 503 while it is down...
            _ = try await postgres("stop")
            let clock = ContinuousClock()
            var outage: TestHost.Reply?
            let elapsed = try await clock.measure { outage = try await started.admin(.POST, notes, json: ["text": "during"]) }
            #expect(outage?.status == 503 && outage?.errorCode == "STORE_UNAVAILABLE", "\(outage?.text ?? "")")
            #expect(elapsed < .seconds(2), "the outage answer took \(elapsed)")
            #expect(try await started.request(.GET, "/ready").status == 503)

            // ...and succeed again once it is back, with no host restart.
            _ = try await postgres("start")
            #expect(try await eventually(timeout: .seconds(20)) { try await started.admin(.POST, notes, json: ["text": "after"]).status == 201 })
            let listed = try await started.admin(.GET, notes)
            let texts = (listed.json["notes"] as? [[String: any Sendable]])?.compactMap { $0["text"] as? String }
            #expect(texts == ["before", "after"], "\(listed.status) \(listed.text)")

            // Stopped for 5 s under a write load: the events of every note that got a 201 reach the audit
            // plugin once the database is back, those that waited for delivery across the outage included.
            try await started.install(try Fixtures.audit)
            try await started.enable("example.audit", in: "ws1", grants: TestHost.auditGrants)
            let stop = StopFlag()
            async let created: [String] = withThrowingTaskGroup(of: [String].self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var ids: [String] = []
                        var index = 0
                        while !stop.flag.load(ordering: .relaxed) {
                            index += 1
                            let reply = try await started.admin(.POST, notes, json: ["text": "load \(writer)-\(index)"])
                            if reply.status == 201, let id = reply.json["id"] as? String { ids.append(id) }
                            if reply.status != 201 { try await Task.sleep(for: .milliseconds(20)) }
                        }
                        return ids
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            try await Task.sleep(for: .milliseconds(500))
            _ = try await postgres("stop")
            try await Task.sleep(for: .seconds(5))
            _ = try await postgres("start")
            #expect(try await eventually(timeout: .seconds(20)) { try await started.admin(.GET, notes).status == 200 })
            try await Task.sleep(for: .milliseconds(500))
            stop.flag.store(true, ordering: .relaxed)
            let acknowledged = try await created
            #expect(acknowledged.count > 10, "too few notes created around the outage: \(acknowledged.count)")
            var unaudited = Set(acknowledged)
            let audited = try await eventually(timeout: .seconds(30)) {
                unaudited = try await Self.unaudited(unaudited) { try await started.admin(.GET, $0).json }
                return unaudited.isEmpty
            }
            #expect(audited, "\(unaudited.count) of \(acknowledged.count) notes created around the outage have no audit entry")
            try await started.stop()
        } catch {
            try? await host?.stop()
            _ = try? await postgres("stop")
            throw error
        }
        _ = try await postgres("stop")
    }

    @Test("kill -9 of the host during a write loop loses no note that was answered 201, and the audit plugin gets an entry for every one",
          .timeLimit(.minutes(3)), arguments: StoreKind.allCases)
    func killDuringWrites(store: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let database = store == .postgres ? try await TestDatabase.create() : nil
        var running: HostProcess?
        do {
            let host = try await HostProcess.start(data: folder.path + "/data", postgres: database, log: folder.path + "/first.log")
            running = host
            #expect(try await host.admin(.POST, "/v1/plugins", body: Data(try Fixtures.notes.utf8), contentType: "application/yaml").status == 201)
            #expect(try await host.admin(.POST, "/v1/tenants", json: ["id": "acme", "name": "Acme"]).status == 201)
            #expect(try await host.admin(.POST, "/v1/tenants/acme/workspaces", json: ["id": "ws1", "name": "One"]).status == 201)
            #expect(try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": TestHost.notesGrants]).status == 200)
            #expect(try await host.admin(.POST, "/v1/plugins", body: Data(try Fixtures.audit.utf8), contentType: "application/yaml").status == 201)
            #expect(try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/example.audit", json: ["grants": TestHost.auditGrants]).status == 200)
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"

            // Four writers until the host dies under them; every 201 names a note that must survive. The
            // kill comes once there are enough acknowledged writes to mean something (on a loaded machine
            // that takes longer than on an idle one), while the writers keep going.
            let written = WriteCounter()
            let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var ids: [String] = []
                        for index in 0... {
                            guard let reply = try? await host.admin(.POST, notes, json: ["text": "w\(writer)-\(index)"]) else { return ids }
                            if reply.status == 201, let id = reply.json["id"] as? String {
                                ids.append(id)
                                written.count.add(1, ordering: .relaxed)
                            }
                        }
                        return ids
                    }
                }
                _ = try await eventually(timeout: .seconds(20)) { written.count.load(ordering: .relaxed) > 40 }
                await host.kill()
                return try await group.reduce(into: []) { $0 += $1 }
            }
            running = nil
            #expect(acknowledged.count > 20, "too few writes before the kill to mean anything: \(acknowledged.count)")

            let restarted = try await HostProcess.start(data: folder.path + "/data", postgres: database, log: folder.path + "/second.log")
            running = restarted
            var stored: Set<String> = []
            var after: String?
            repeat {
                let page = try await restarted.admin(.GET, notes + "?limit=1000" + (after.map { "&after=\($0)" } ?? "")).json
                for note in page["notes"] as? [[String: any Sendable]] ?? [] { if let id = note["id"] as? String { stored.insert(id) } }
                after = page["next"] as? String
            } while after != nil
            let lost = Set(acknowledged).subtracting(stored)
            #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) acknowledged writes were lost")

            // Each note's event was stored with it, so the audit trail catches up with every one, the
            // events queued when the host died included.
            var unaudited = Set(acknowledged)
            let audited = try await eventually(timeout: .seconds(30)) {
                unaudited = try await Self.unaudited(unaudited) { try await restarted.admin(.GET, $0).json }
                return unaudited.isEmpty
            }
            #expect(audited, "\(unaudited.count) of \(acknowledged.count) acknowledged notes have no audit entry")
            await restarted.terminate()
        } catch {
            await running?.kill()
            await database?.drop()
            throw error
        }
        await database?.drop()
    }

    /// Of the notes `ids`, those the audit plugin of ws1 has no entry for; `get` answers an admin GET.
    static func unaudited(_ ids: Set<String>, get: (String) async throws -> [String: any Sendable]) async throws -> Set<String> {
        var missing = ids
        var after: String?
        repeat {
            let page = try await get("/v1/workspaces/ws1/plugins/example.audit/resources/entries?limit=1000" + (after.map { "&after=\($0)" } ?? ""))
            for entry in page["entries"] as? [[String: any Sendable]] ?? [] {
                if let id = (entry["payload"] as? [String: any Sendable])?["id"] as? String { missing.remove(id) }
            }
            after = page["next"] as? String
        } while after != nil
        return missing
    }

    private func started(_ start: () async throws -> HostProcess) async -> Result<HostProcess, any Error> {
        do { return .success(try await start()) } catch { return .failure(error) }
    }
}

/// Acknowledged writes so far, shared by the writer tasks.
private final class WriteCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// Tells writer tasks to stop.
private final class StopFlag: Sendable {
    let flag = Atomic<Bool>(false)
}
