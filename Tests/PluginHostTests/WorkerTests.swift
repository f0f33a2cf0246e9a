import Foundation
import PluginHost
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Library plugins in `plugin-host-worker` processes: real child processes, crashed, hung and killed on
/// purpose by the faulty fixture, beside plugins that must not notice.
@Suite("Worker processes")
struct WorkerTests {
    static let faulty = "/v1/workspaces/ws1/plugins/test.faulty/resources/"

    /// A host with the faulty fixture in a worker (and the notes plugin in the host's own process) enabled in ws1,
    /// restarts after 10 ms and quarantine after `quarantineCrashes`.
    func withFaultyWorker(
        quarantineCrashes: Int = 100, configure: @escaping (inout HostConfiguration) -> Void = { _ in }, _ body: (TestHost) async throws -> Void
    ) async throws {
        try await withHost(configure: { configuration in
            configuration.workers.restart.initialDelay = .milliseconds(10)
            configuration.workers.quarantineCrashes = quarantineCrashes
            // Crashes end at once: a symbolicated backtrace costs about a second of CPU, which the other
            // suites running beside this one would feel.
            configuration.workers.environment = ["SWIFT_BACKTRACE": "enable=no"]
            configure(&configuration)
        }) { host in
            try await host.install(try Fixtures.faulty(isolation: "worker"))
            try await host.install(try Fixtures.notes, isolation: "in-process")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: ["storage.read"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await body(host)
        }
    }

    func workerPID(_ host: TestHost) async throws -> Int? {
        try await host.admin(.GET, Self.faulty + "pid").json["pid"] as? Int
    }

    func workerStatus(_ host: TestHost) async throws -> [String: any Sendable] {
        try await host.admin(.GET, "/v1/plugins/test.faulty").json["worker"] as? [String: any Sendable] ?? [:]
    }

    @Test("a plugin with isolation: worker runs in a process of its own, which the API shows; it stops with the host")
    func runsInAWorker() async throws {
        var pid: Int?
        try await withFaultyWorker(configure: { $0.workers.startTimeout = .seconds(2) }) { host in
            pid = try await workerPID(host)
            #expect(pid != nil && pid != Int(getpid()))
            // It holds no descriptor of the host's: its one socket is its standard input.
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid ?? 0)/fd")
            let sockets = descriptors.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid ?? 0)/fd/\($0)")) ?? "").hasPrefix("socket:") }
            #expect(sockets == ["0"], "the worker holds sockets \(sockets)")
            // The limit on its start does not outlive the start.
            try await Task.sleep(for: .milliseconds(2300))
            #expect(try await workerPID(host) == pid)
            let plugin = try await host.admin(.GET, "/v1/plugins/test.faulty").json
            #expect((plugin["runtime"] as? [String: any Sendable])?["isolation"] as? String == "worker")
            let worker = try await workerStatus(host)
            #expect(worker["state"] as? String == "running")
            #expect(worker["pid"] as? Int == pid)
            #expect((worker["rssBytes"] as? Int ?? 0) > 0)
            // The in-process plugin says so too.
            let notes = try await host.admin(.GET, "/v1/plugins/example.notes").json
            #expect((notes["runtime"] as? [String: any Sendable])?["isolation"] as? String == "in-process")
            #expect(notes["worker"] == nil)
        }
        let stopped = try #require(pid)
        #expect(kill(pid_t(stopped), 0) != 0, "the worker \(stopped) outlived its host")
    }

    @Test("a crash fails only the crashing call with 502 PLUGIN_CRASHED; other plugins go on, and the worker restarts",
          arguments: ["segfault", "abort", "fatal", "exit", "garbage", "oversized"])
    func crashIsContained(fault: String) async throws {
        try await withFaultyWorker { host in
            let before = try await workerPID(host)
            let crashed = try await host.admin(.GET, Self.faulty + fault)
            #expect(crashed.status == 502, "\(crashed.text)")
            #expect(crashed.errorCode == "PLUGIN_CRASHED")
            // Another plugin, and the host, never noticed.
            #expect(try await host.admin(.POST, ConformanceTests.notes("ws1"), json: ["text": "still here"]).status == 201)
            #expect(try await host.request(.GET, "/health").status == 200)
            // The next call finds a new worker.
            #expect(try await eventually { try await host.admin(.GET, Self.faulty + "fine").status == 200 })
            let after = try await workerPID(host)
            #expect(after != nil && after != before)
            let worker = try await workerStatus(host)
            #expect(worker["crashes"] as? Int == 1)
            let metrics = try await host.request(.GET, "/metrics").text
            #expect(metrics.contains(#"plugin_host_worker_crashes{plugin="test.faulty"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"plugin_host_worker_up{plugin="test.faulty"} 1"#))
            let last = worker["lastCrash"] as? [String: any Sendable]
            let status = last?["status"] as? String ?? ""
            switch fault {
            case "segfault": #expect(status.contains("SIGSEGV"), "\(status)")
            case "abort": #expect(status.contains("SIGABRT"), "\(status)")
            case "fatal": #expect(status.contains("SIGILL") || status.contains("SIGTRAP"), "\(status)")
            case "exit": #expect(status == "exited with status 0", "\(status)")
            case "oversized": #expect((last?["reason"] as? String)?.contains("over the limit") == true, "\(String(describing: last))")
            default: #expect((last?["reason"] as? String)?.contains("not a frame") == true, "\(String(describing: last))")
            }
        }
    }

    @Test("a call past its time limit gets 504 and stops the worker: an endless loop costs a restart, not a thread")
    func endlessLoop() async throws {
        try await withFaultyWorker(configure: { $0.pluginTimeout = .milliseconds(500) }) { host in
            let before = try await workerPID(host)
            let started = ContinuousClock.now
            let spun = try await host.admin(.GET, Self.faulty + "spin")
            #expect(spun.status == 504)
            #expect(spun.errorCode == "PLUGIN_TIMEOUT")
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(try await eventually { try await host.admin(.GET, Self.faulty + "fine").status == 200 })
            #expect(try await workerPID(host) != before)
            let reason = (try await workerStatus(host)["lastCrash"] as? [String: any Sendable])?["reason"] as? String
            #expect(reason?.contains("time limit") == true, "\(reason ?? "-")")
        }
    }

    @Test("repeated crashes quarantine the plugin (503 PLUGIN_QUARANTINED) until a platform admin lifts it")
    func quarantine() async throws {
        try await withFaultyWorker(quarantineCrashes: 3) { host in
            for _ in 0..<3 {
                #expect(try await eventually { try await host.admin(.GET, Self.faulty + "abort").status == 502 })
            }
            let refused = try await host.admin(.GET, Self.faulty + "fine")
            #expect(refused.status == 503)
            #expect(refused.errorCode == "PLUGIN_QUARANTINED")
            let worker = try await workerStatus(host)
            #expect(worker["state"] as? String == "quarantined")
            #expect(worker["quarantined"] as? Bool == true)
            #expect((worker["lastCrash"] as? [String: any Sendable])?["status"] as? String == "killed by signal 6 (SIGABRT)")
            // Only a platform admin lifts it.
            let member = try await host.token(tenant: "acme", role: "tenant-admin")
            #expect(try await host.request(.DELETE, "/v1/plugins/test.faulty/quarantine", token: member).status == 403)
            #expect(try await host.admin(.DELETE, "/v1/plugins/test.faulty/quarantine").status == 204)
            #expect(try await host.admin(.GET, Self.faulty + "fine").status == 200)
            #expect(try await workerStatus(host)["state"] as? String == "running")
        }
    }

    @Test("what a plugin forks is stopped with its worker")
    func forkedChildren() async throws {
        try await withFaultyWorker { host in
            let child = try #require(try await host.admin(.GET, Self.faulty + "fork").json["child"] as? Int)
            #expect(kill(pid_t(child), 0) == 0)
            #expect(try await host.admin(.GET, Self.faulty + "abort").status == 502)
            #expect(try await eventually { kill(pid_t(child), 0) != 0 }, "the forked child \(child) outlived its worker")
        }
    }

    @Test("log floods and stderr reach the host's log with the plugin's id, and the host goes on")
    func logsReachTheHost() async throws {
        try await withFaultyWorker { host in
            let flooded = try await host.admin(.GET, Self.faulty + "flood")
            #expect(flooded.status == 200, "\(flooded.text)")
            let logged = try await eventually {
                host.logs.entries.contains { entry in
                    "\(entry.message)" == "flood 4999" && entry.metadata["plugin.id"] == "test.faulty" && entry.metadata["workspace.id"] == "ws1"
                }
            }
            #expect(logged)
            #expect(try await host.admin(.GET, Self.faulty + "fine").status == 200)
        }
    }

    @Test("a worker that names a call it was not given (never issued, or ended) is refused; its own call works")
    func forgedCalls() async throws {
        let rogue = Fixtures.root.appendingPathComponent("Tests/Fixtures/RogueWorker/rogue_worker.py").path
        try await withHost(configure: { $0.workers.executable = rogue }) { host in
            try await host.install(try Fixtures.faulty(isolation: "worker"))
            try await host.tenant("acme", workspaces: ["ws1", "ws2"])
            try await host.enable("test.faulty", in: "ws1", grants: ["storage.read", "storage.write"])
            try await host.enable("test.faulty", in: "ws2", grants: ["storage.read", "storage.write"])
            let first = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.faulty/resources/x")
            #expect(first.status == 200, "\(first.text)")
            let forged = (first.json["never issued"] as? [String: any Sendable])?["refused"] as? String
            #expect(forged?.contains("is not in flight on this worker") == true, "\(first.text)")
            #expect((first.json["own"] as? [String: any Sendable])?["version"] as? Int == 1, "\(first.text)")
            // The call before, in another workspace, has ended: naming it reaches nothing.
            let second = try await host.admin(.GET, "/v1/workspaces/ws2/plugins/test.faulty/resources/x")
            #expect(((second.json["ended"] as? [String: any Sendable])?["refused"] as? String)?.contains("is not in flight") == true, "\(second.text)")
            #expect((second.json["own"] as? [String: any Sendable])?["version"] as? Int == 1, "\(second.text)")
        }
    }

    @Test("a host killed with SIGKILL leaves no worker behind")
    func hostKilled() async throws {
        let folder = try TemporaryFolder()
        let host = try await HostProcess.start(data: folder.path + "/data", log: folder.path + "/host.log", arguments: ["--isolation", "worker"])
        #expect(try await host.admin(.POST, "/v1/plugins", body: Data(try Fixtures.faulty().utf8), contentType: "application/yaml").status == 201)
        #expect(try await host.admin(.POST, "/v1/tenants", json: ["id": "acme", "name": "acme"]).status == 201)
        #expect(try await host.admin(.POST, "/v1/tenants/acme/workspaces", json: ["id": "ws1", "name": "ws1"]).status == 201)
        #expect(try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/test.faulty", json: ["grants": [String]()]).status == 200)
        let plugin = try await host.admin(.GET, "/v1/plugins/test.faulty").json
        #expect((plugin["runtime"] as? [String: any Sendable])?["isolation"] as? String == "worker")
        let pid = try #require(try await host.admin(.GET, Self.faulty + "pid").json["pid"] as? Int)
        #expect(kill(pid_t(pid), 0) == 0)
        await host.kill()
        #expect(try await eventually { kill(pid_t(pid), 0) != 0 }, "worker \(pid) outlived its host")
    }

    @Test("an upgrade under load fails no request: the new version's worker starts first, the old one drains and exits")
    func upgradeUnderLoad() async throws {
        try await withFaultyWorker { host in
            let oldPID = try #require(try await workerPID(host))
            final class Load: Sendable {
                let stop = Atomic<Bool>(false)
                let failures = Mutex<[String]>([])
            }
            let load = Load()
            try await withThrowingTaskGroup(of: Int.self) { group in
                // Two callers of a 1-second call (in flight while the upgrade happens), two of a quick one.
                for resource in ["slow", "slow", "fine", "fine"] {
                    group.addTask {
                        var done = 0
                        while !load.stop.load(ordering: .relaxed) {
                            let reply = try await host.admin(.GET, Self.faulty + resource)
                            if reply.status != 200 { load.failures.withLock { $0.append("\(reply.status) \(reply.text)") } }
                            done += 1
                        }
                        return done
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                try await host.install(try Fixtures.faulty(version: "2.0.0", isolation: "worker"))
                try await Task.sleep(for: .milliseconds(1500))
                load.stop.store(true, ordering: .relaxed)
                #expect(try await group.reduce(0, +) >= 20)
            }
            #expect(load.failures.withLock { $0 }.isEmpty, "\(load.failures.withLock { $0 })")
            #expect(try await host.admin(.GET, Self.faulty + "module").json["module"] as? String == "FaultyPluginV2")
            #expect(try await workerPID(host) != oldPID)
            // The old worker has exited: its code is unloaded.
            #expect(try await eventually { kill(pid_t(oldPID), 0) != 0 }, "the old worker \(oldPID) is still there")
        }
    }

    @Test("a worker holds to its manifest's limits: past its memory it ends, reported as out of memory; its open files are capped")
    func memoryLimit() async throws {
        // With the runtime's backtrace on (as by default): the report comes before it.
        try await withHost { host in
            try await host.install(try Fixtures.faulty(isolation: "worker") + "\nlimits: {memory: 512MiB, openFiles: 64}\n")
            try await host.install(try Fixtures.notes)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            let opened = try await host.admin(.GET, Self.faulty + "files").json["opened"] as? Int ?? 0
            #expect(opened > 0 && opened < 64, "opened \(opened)")
            let hog = try await host.admin(.GET, Self.faulty + "hog")
            #expect(hog.status == 502, "\(hog.text)")
            #expect(hog.errorCode == "PLUGIN_CRASHED")
            #expect(hog.text.contains("out of memory"), "\(hog.text)")
            #expect(try await host.admin(.POST, ConformanceTests.notes("ws1"), json: ["text": "unaffected"]).status == 201)
            let last = try await workerStatus(host)["lastCrash"] as? [String: any Sendable]
            #expect((last?["status"] as? String)?.contains("out of memory") == true, "\(String(describing: last))")
            #expect(try await eventually { try await host.admin(.GET, Self.faulty + "fine").status == 200 })
        }
    }

    @Test("the platform admin chooses the isolation at install, over the manifest's; an unknown one is refused")
    func isolationAtInstall() async throws {
        try await withHost { host in
            let refused = try await host.admin(.POST, "/v1/plugins?isolation=sandbox", body: Data(try Fixtures.faulty().utf8), contentType: "application/yaml")
            #expect(refused.status == 400)
            #expect(refused.text.contains("sandbox"))
            let installed = try await host.admin(.POST, "/v1/plugins?isolation=worker", body: Data(try Fixtures.faulty(isolation: "in-process").utf8), contentType: "application/yaml")
            #expect(installed.status == 201, "\(installed.text)")
            #expect((installed.json["runtime"] as? [String: any Sendable])?["isolation"] as? String == "worker")
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [])
            let pid = try await workerPID(host)
            #expect(pid != nil && pid != Int(getpid()))
        }
    }

    @Test("a worker whose plugin ignores the stop is killed after the grace; uninstall and the host go on")
    func ignoresTheStop() async throws {
        try await withHost(configure: { $0.workers.shutdownGrace = .milliseconds(300); $0.pluginTimeout = .seconds(2) }) { host in
            try await host.install(try Fixtures.faulty(isolation: "worker"))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.faulty", in: "ws1", grants: [], config: ["stubborn": true])
            let pid = try #require(try await workerPID(host))
            #expect(try await host.admin(.DELETE, "/v1/workspaces/ws1/plugins/test.faulty").status == 204)
            let started = ContinuousClock.now
            #expect(try await host.admin(.DELETE, "/v1/plugins/test.faulty").status == 204)
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(try await eventually { kill(pid_t(pid), 0) != 0 }, "the worker \(pid) is still there")
            #expect(try await host.request(.GET, "/health").status == 200)
        }
    }
}
