import Foundation
import Logging
import PluginHost
import PluginSDK
import Synchronization

/// Durable events on one store: a write batch of one put and one publish against a plain put (both
/// through the notes plugin's `context.storage`), and events from publish to delivered to the audit
/// plugin (in-process, through the host's lanes) against the same rows written and read back with the
/// store's own statements and no delivery.
struct EventBenchmark {
    let pluginsFolder: String
    let callers = 16
    let duration: Duration = .seconds(3)
    let rounds = 3
    let events = 20_000

    struct Result {
        var puts: [Double]
        var batches: [Double]
        var publishedPerSecond: Double
        var deliveredPerSecond: Double
        var baselinePerSecond: Double
        /// Publish to delivery, in milliseconds.
        var lagP50: Double
        var lagP99: Double
    }

    func run(store: any HostStore, folder: String) async throws -> Result {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let runtime = try await PluginRuntime.standalone(configuration: inProcess(HostConfiguration(dataDirectory: folder)), store: store, logger: logger)
        if runtime.plugin(id: "example.notes") == nil { _ = try await runtime.install(manifestText: notesManifest(pluginsFolder), baseDirectory: pluginsFolder) }
        if runtime.plugin(id: "example.audit") == nil { _ = try await runtime.install(manifestText: auditManifest(pluginsFolder), baseDirectory: pluginsFolder) }
        let workspaceID = "events-\(UUID().uuidString.prefix(8).lowercased())"
        if runtime.workspace(id: "bench") == nil, (try? await runtime.createTenant(id: "bench", name: "bench")) == nil {}
        let workspace = try await runtime.createWorkspace(id: workspaceID, name: "events", tenantID: "bench")
        let caller = Caller(subject: "bench", role: .member)
        _ = try await runtime.enable(workspace: workspace, pluginID: "example.notes", grants: ["storage.read", "storage.write", "events.publish:notes.*"], config: [:], caller: caller)
        let context = try runtime.context(workspace: workspace, pluginID: "example.notes", caller: caller)
        let executor = runtime.executor(workspace: workspace, pluginID: "example.notes")
        let storage = context.storage
        let value = Data(repeating: 0x61, count: 128)
        let payload = Data(#"{"id":"n","text":"a note of about this size"}"#.utf8)

        // 1. A batch of a put and a publish against a plain put: nobody subscribes yet.
        let (puts, batches) = try await alternatingRounds(rounds, warmUp: true, {
            try await concurrentRate(callers: self.callers, for: self.duration, on: executor) { worker, index in _ = try await storage.put("bench/\((worker * 31 + index) % 100)", value) }
        }, {
            try await concurrentRate(callers: self.callers, for: self.duration, on: executor) { worker, index in
                var batch = WriteBatch()
                batch.put("bench/\((worker * 31 + index) % 100)", value)
                batch.publish(type: "notes.bench", payload: payload)
                _ = try await storage.commit(batch)
            }
        })

        // 2. Publish to delivered: the audit plugin subscribes, the host's lanes deliver.
        _ = try await runtime.enable(workspace: workspace, pluginID: "example.audit", grants: ["storage.read", "storage.write", "events.subscribe:notes.*"], config: [:], caller: caller)
        let delivery = EventDelivery(runtime: runtime, logger: logger)
        let lags = Mutex<[Double]>([])
        let last = Mutex<ContinuousClock.Instant?>(nil)
        delivery.observeDeliveries { event, _ in
            guard event.type == "notes.timed" else { return }
            let lag = Date().timeIntervalSince(event.occurredAt) * 1000
            lags.withLock { $0.append(lag) }
            last.withLock { $0 = .now }
        }
        let running = Task { try await delivery.run() }
        let events = self.events
        let callers = self.callers
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<callers {
                group.addTask(executorPreference: executor) {
                    for _ in stride(from: worker, to: events, by: callers) { try await context.events.publish(type: "notes.timed", payload: payload) }
                }
            }
            try await group.waitForAll()
        }
        let published = ContinuousClock.now - started
        let deadline = ContinuousClock.now + .seconds(120)
        while lags.withLock({ $0.count }) < events, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        running.cancel()
        _ = try? await running.value
        let delivered = lags.withLock { $0 }
        let deliveredTime = (last.withLock { $0 } ?? .now) - started

        // 3. Baseline: the same rows written by the store's own statement and read back in order, with no
        // grants, lanes or plugin.
        let scope = StorageScope(workspaceID: workspaceID + "-raw", pluginID: "example.notes")
        let baselineStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<callers {
                group.addTask(executorPreference: executor) {
                    for _ in stride(from: worker, to: events, by: callers) {
                        let event = PluginEvent(
                            id: UUID().uuidString.lowercased(), type: "notes.timed", workspaceID: scope.workspaceID, sourcePluginID: scope.pluginID, occurredAt: Date(),
                            payload: payload)
                        _ = try await store.commit(scope, writes: [], events: [event])
                    }
                }
            }
            try await group.waitForAll()
        }
        var position = EventPosition(tx: 0, seq: 0)
        var read = 0
        while read < events {
            let batch = try await store.events(workspaceID: scope.workspaceID, after: position, limit: 256)
            if batch.isEmpty { try await Task.sleep(for: .milliseconds(1)); continue }
            read += batch.count
            position = batch.last!.position  // not empty, checked above
        }
        let baseline = ContinuousClock.now - baselineStart

        let sorted = delivered.sorted()
        func percentile(_ fraction: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))] }
        return Result(
            puts: puts, batches: batches, publishedPerSecond: Double(events) / published.benchSeconds,
            deliveredPerSecond: Double(delivered.count) / deliveredTime.benchSeconds, baselinePerSecond: Double(events) / baseline.benchSeconds,
            lagP50: percentile(0.5), lagP99: percentile(0.99))
    }
}

func auditManifest(_ folder: String) -> String {
    """
    {"id": "example.audit", "name": "Audit", "version": "1.0.0", "sdk": "^1.0.0",
     "runtime": {"kind": "library", "path": "\(folder)/libAuditPlugin.so"},
     "permissions": ["storage.read", "storage.write", "events.subscribe:notes.*"],
     "subscriptions": ["notes.*"],
     "routes": [{"method": "GET", "path": "entries"}]}
    """
}

extension Duration {
    var benchSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
