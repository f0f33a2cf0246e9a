import Foundation
import Testing

@Suite("Durable events")
struct EventTests {
    static let faultyGrants = ["storage.read", "storage.write", "events.subscribe:notes.*", "events.publish:notes.faulty"]

    /// Notes, audit and the faulty fixture enabled in ws1 of tenant acme.
    static func workspace(_ host: TestHost, faultyFailures: Int) async throws {
        try await host.install(try Fixtures.notes)
        try await host.install(try Fixtures.audit)
        try await host.install(try Fixtures.faulty())
        try await host.tenant("acme", workspaces: ["ws1"])
        try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
        try await host.enable("example.audit", in: "ws1", grants: TestHost.auditGrants)
        try await host.enable("test.faulty", in: "ws1", grants: faultyGrants, config: ["eventFailures": faultyFailures])
    }

    static func auditedEvents(_ host: TestHost) async throws -> [[String: any Sendable]] {
        try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.audit/resources/entries").json["entries"] as? [[String: any Sendable]] ?? []
    }

    static func received(_ host: TestHost) async throws -> [String: Int] {
        try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/received").json as? [String: Int] ?? [:]
    }

    @Test("a write batch commits its put and its event together; thrown before the commit or with a failed condition, neither is visible",
          arguments: StoreKind.allCases)
    func batches(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await Self.workspace(host, faultyFailures: 0)
            let base = "/v1/workspaces/ws1/plugins/test.faulty/resources/"

            let thrown = try await host.admin(.POST, base + "batch?then=throw")
            #expect(thrown.status == 500 && thrown.errorCode == "PLUGIN_ERROR", "\(thrown.text)")
            let conflict = try await host.admin(.POST, base + "batch?then=conflict")
            #expect(conflict.status == 409 && conflict.errorCode == "VERSION_CONFLICT", "\(conflict.text)")
            let error = conflict.json["error"] as? [String: any Sendable]
            #expect(error?["key"] as? String == "absent" && error?["current"] as? Int == 0, "the conflict names the key and its version: \(conflict.text)")
            #expect(try await host.admin(.GET, base + "batched").status == 404, "nothing of the refused batches was written")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await Self.auditedEvents(host).isEmpty, "no event of the refused batches was published")

            let committed = try await host.admin(.POST, base + "batch?then=commit")
            #expect(committed.status == 200, "\(committed.text)")
            #expect(committed.json["version"] as? String == "1")
            let event = try #require(committed.json["event"] as? String)
            #expect(try await host.admin(.GET, base + "batched").text == "value")
            #expect(try await eventually { try await Self.auditedEvents(host).contains { $0["id"] as? String == event } })
        }
    }

    @Test("a subscriber failing twice gets the event on the third attempt, once; one that always fails leaves a dead letter, delivered by a replay after the fix",
          .timeLimit(.minutes(2)), arguments: StoreKind.allCases)
    func retriesAndDeadLetters(store: StoreKind) async throws {
        try await withHost(store: store, configure: { $0.eventRetry = .init(maxAttempts: 3, initialDelay: .milliseconds(20), maxDelay: .milliseconds(100)) }) { host in
            try await Self.workspace(host, faultyFailures: 2)
            let notes = "/v1/workspaces/ws1/plugins/example.notes/resources/notes"
            #expect(try await host.admin(.POST, notes, json: ["text": "first"]).status == 201)
            #expect(try await eventually { try await Self.auditedEvents(host).count == 1 })
            let first = try #require(try await Self.auditedEvents(host).first?["id"] as? String)
            #expect(try await eventually { try await Self.received(host)[first] == 1 })
            #expect(try await eventually { try await host.request(.GET, "/metrics").text.contains("plugin_host_event_retries_total{workspace=\"ws1\",plugin=\"test.faulty\"} 2") })

            // Now it always fails: after 3 attempts the delivery is a dead letter, and the lane goes on.
            try await host.enable("test.faulty", in: "ws1", grants: Self.faultyGrants, config: ["eventFailures": -1])
            #expect(try await host.admin(.POST, notes, json: ["text": "second"]).status == 201)
            #expect(try await host.admin(.POST, notes, json: ["text": "third"]).status == 201)
            let letters = "/v1/workspaces/ws1/dead-letters"
            #expect(try await eventually(timeout: .seconds(20)) { (try await host.admin(.GET, letters).json["deadLetters"] as? [Any])?.count == 2 })
            let listed = try await host.admin(.GET, letters).json["deadLetters"] as? [[String: any Sendable]] ?? []
            #expect(listed.allSatisfy { $0["pluginId"] as? String == "test.faulty" && $0["attempts"] as? Int == 3 && $0["state"] as? String == "dead" })
            #expect(listed.allSatisfy { (($0["event"] as? [String: any Sendable])?["type"] as? String) == "notes.created" })
            #expect(try await eventually { try await Self.auditedEvents(host).count == 3 }, "the other subscriber gets every event, in its own lane")
            #expect(try await eventually { try await host.request(.GET, "/metrics").text.contains("plugin_host_event_dead_letters_total{workspace=\"ws1\",plugin=\"test.faulty\"} 2") })

            // A member cannot see them; another tenant's admin does not find the workspace.
            let member = try await host.token(tenant: "acme", role: "member", workspaces: ["ws1"])
            #expect(try await host.request(.GET, letters, token: member).status == 403)

            // Fixed, then replayed: each is delivered once, and shows as delivered.
            try await host.enable("test.faulty", in: "ws1", grants: Self.faultyGrants, config: ["eventFailures": 0])
            let one = try #require(listed.first?["id"] as? String)
            let replayOne = try await host.admin(.POST, letters + "/\(one)/replay")
            #expect(replayOne.status == 202 && (replayOne.json["replaying"] as? [String]) == [one], "\(replayOne.text)")
            #expect(try await host.admin(.POST, letters + "/\(one)/replay").errorCode == "DEAD_LETTER_NOT_WAITING")
            #expect(try await host.admin(.POST, letters + "/replay").json["replaying"] as? [String] == listed.dropFirst().compactMap { $0["id"] as? String })
            let eventIDs = listed.compactMap { ($0["event"] as? [String: any Sendable])?["id"] as? String }
            #expect(try await eventually(timeout: .seconds(10)) {
                let received = try await Self.received(host)
                return eventIDs.allSatisfy { received[$0] == 1 }
            })
            #expect(try await eventually {
                let delivered = try await host.admin(.GET, letters + "?state=delivered").json["deadLetters"] as? [Any]
                return delivered?.count == 2
            })
            #expect((try await host.admin(.GET, letters).json["deadLetters"] as? [Any])?.isEmpty == true)
            #expect(try await host.admin(.DELETE, letters + "/nope").errorCode == "DEAD_LETTER_NOT_FOUND")
        }
    }

    @Test("a subscriber with delivery.batchSize takes waiting events in one call; a poison event among them is retried alone and buried, the others delivered once",
          .timeLimit(.minutes(2)), arguments: [(StoreKind.sqlite, "worker"), (StoreKind.postgres, "in-process")])
    func batchDelivery(store: StoreKind, isolation: String) async throws {
        try await withHost(store: store, configure: { $0.eventRetry = .init(maxAttempts: 2, initialDelay: .milliseconds(10), maxDelay: .milliseconds(50)) }) { host in
            try await host.install(try Fixtures.faulty(batchSize: 50), isolation: isolation)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: Self.faultyGrants, config: ["eventFailures": 0])
            let base = "/v1/workspaces/ws1/plugins/test.faulty/resources/"
            // 30 events in one commit: the lane finds them waiting together.
            let published = try await host.admin(.POST, base + "publish?count=30&poison=12")
            #expect(published.status == 200, "\(published.text)")
            let ids = try #require(published.json["events"] as? [String])
            try #require(ids.count == 30)
            let letters = "/v1/workspaces/ws1/dead-letters"
            #expect(try await eventually { (try await host.admin(.GET, letters).json["deadLetters"] as? [Any])?.count == 1 })
            let letter = (try await host.admin(.GET, letters).json["deadLetters"] as? [[String: any Sendable]])?.first
            #expect((letter?["event"] as? [String: any Sendable])?["id"] as? String == ids[12], "only the poison event is buried")
            #expect(letter?["attempts"] as? Int == 2)
            let healthy = ids.enumerated().filter { $0.offset != 12 }.map(\.element)
            #expect(try await eventually {
                let received = try await Self.received(host)
                return healthy.allSatisfy { received[$0] == 1 }
            }, "every other event is delivered, once")
            #expect(try await Self.received(host)[ids[12]] == nil)
            // One call brought all 30; then one event a call up to the end of that run (the poison one twice).
            let calls = try await host.admin(.GET, base + "calls").json["calls"] as? [Int] ?? []
            #expect(calls == [30] + Array(repeating: 1, count: 31), "\(calls)")

            // Past the failed run, waiting events come together again.
            #expect(try await host.admin(.POST, base + "publish?count=10").status == 200)
            #expect(try await eventually { (try await Self.received(host)).count == 39 })
            #expect((try await host.admin(.GET, base + "calls").json["calls"] as? [Int])?.last == 10)
            // Each delivered event's lag is in the histogram; the buried one is not.
            let metrics = try await host.request(.GET, "/metrics").text.split(separator: "\n")
            #expect(metrics.contains { $0.hasPrefix("plugin_host_event_delivery_lag_seconds_count{") && $0.contains("plugin=\"test.faulty\"") && $0.hasSuffix(" 39") },
                    "\(metrics.filter { $0.contains("delivery_lag_seconds_count") })")
        }
    }

    @Test("a lane passes over more than a read's worth of events its subscriber does not take, and delivers the next one it does",
          arguments: StoreKind.allCases)
    func passesOverOthers(store: StoreKind) async throws {
        try await withHost(store: store) { host in
            try await host.install(try Fixtures.notes)
            // The audit plugin, subscribed to notes.created alone.
            let audit = try Fixtures.audit.replacingOccurrences(of: "events.subscribe:notes.*", with: "events.subscribe:notes.created")
                .replacingOccurrences(of: "subscriptions:\n  - notes.*", with: "subscriptions:\n  - notes.created")
            try #require(audit.contains("  - notes.created"))
            try await host.install(audit)
            try await host.install(try Fixtures.faulty())
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("example.audit", in: "ws1", grants: ["storage.read", "storage.write", "events.subscribe:notes.created"])
            try await host.enable("test.faulty", in: "ws1", grants: Self.faultyGrants, config: ["eventFailures": 0])
            // 300 notes.faulty events, more than the 256 a lane reads at a time, then one note.
            for _ in 0..<3 {
                #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/test.faulty/resources/publish?count=100").status == 200)
            }
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "after"]).status == 201)
            #expect(try await eventually { try await Self.auditedEvents(host).count == 1 })
            #expect(try await Self.auditedEvents(host).first?["type"] as? String == "notes.created")
        }
    }

    @Test("a manifest's delivery.maxAttempts lowers the host's attempts, and cannot raise them", arguments: [2, 50])
    func manifestAttempts(asked: Int) async throws {
        try await withHost(configure: { $0.eventRetry = .init(maxAttempts: 3, initialDelay: .milliseconds(10), maxDelay: .milliseconds(50)) }) { host in
            try await host.install(try Fixtures.notes)
            try await host.install(try Fixtures.faulty() + "\ndelivery:\n  maxAttempts: \(asked)\n")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("test.faulty", in: "ws1", grants: Self.faultyGrants)
            #expect(try await host.admin(.POST, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "x"]).status == 201)
            let letters = "/v1/workspaces/ws1/dead-letters"
            #expect(try await eventually { (try await host.admin(.GET, letters).json["deadLetters"] as? [Any])?.count == 1 })
            let letter = (try await host.admin(.GET, letters).json["deadLetters"] as? [[String: any Sendable]])?.first
            #expect(letter?["attempts"] as? Int == min(asked, 3), "asked for \(asked) attempts, the host allows 3")
        }
    }

    @Test("host events: a subscriber gets core.plugin.enabled (its own included) and core.plugin.disabled of its workspace")
    func hostEvents() async throws {
        try await withHost { host in
            // The audit plugin, subscribed to the host's events instead of notes'.
            let watcher = try Fixtures.audit.replacingOccurrences(of: "events.subscribe:notes.*", with: "events.subscribe:core.*")
                .replacingOccurrences(of: "  - notes.*", with: "  - core.*")
            try await host.install(watcher)
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.audit", in: "ws1", grants: ["storage.read", "storage.write", "events.subscribe:core.*"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            _ = try await host.admin(.DELETE, "/v1/workspaces/ws1/plugins/example.notes")
            let entries = "/v1/workspaces/ws1/plugins/example.audit/resources/entries"
            #expect(try await eventually {
                let types = (try await host.admin(.GET, entries).json["entries"] as? [[String: any Sendable]] ?? []).compactMap { $0["type"] as? String }
                return types.sorted() == ["core.plugin.disabled", "core.plugin.enabled", "core.plugin.enabled"]
            })
        }
    }
}
