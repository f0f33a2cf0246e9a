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
    let events = 50_000
    /// Events published in each commit (one write batch).
    let perCommit = 10
    /// Subscribers of the fan-out figure.
    let fanOut = 10

    /// Events published (`perCommit` to a commit) and delivered to one subscriber.
    struct Delivered {
        var subscriber: String
        var publishedPerSecond: Double
        var deliveredPerSecond: Double
        /// Events a second published for the latency figures.
        var pacedRate: Int
        /// Publish to delivery at `pacedRate`, in milliseconds.
        var lagP50: Double
        var lagP99: Double
    }

    /// Events delivered to every one of several subscribers.
    struct FanOut {
        var subscribers: Int
        var events: Int
        /// Events a second that reached all of them, from the first publish to the last delivery.
        var eventsPerSecond: Double
    }

    /// Deliveries of one type to one subscriber in one workspace.
    struct Observed {
        var count = 0
        var lags: [Double] = []
        var last: ContinuousClock.Instant?

        mutating func record(lag: Double, at instant: ContinuousClock.Instant) {
            count += 1
            lags.append(lag)
            last = instant
        }
    }

    struct Result {
        var puts: [Double]
        var batches: [Double]
        var subscribers: [Delivered]
        var fanOut: FanOut
        var baselinePerSecond: Double
    }

    func run(store: any HostStore, folder: String) async throws -> Result {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let runtime = try await PluginRuntime.standalone(configuration: inProcess(HostConfiguration(dataDirectory: folder)), store: store, logger: logger)
        if runtime.plugin(id: "example.notes") == nil { _ = try await runtime.install(manifestText: notesManifest(pluginsFolder), baseDirectory: pluginsFolder) }
        if runtime.plugin(id: "example.audit") == nil { _ = try await runtime.install(manifestText: auditManifest(pluginsFolder), baseDirectory: pluginsFolder) }
        if runtime.plugin(id: "example.echo") == nil { _ = try await runtime.install(manifestText: subscribingEchoManifest(pluginsFolder), baseDirectory: pluginsFolder) }
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

        // 2. Publish to delivered, for each subscriber in a workspace of its own: the host's lanes deliver.
        // What the lanes delivered, per workspace, subscriber and type: one lookup per event under the
        // lock, which ten lanes share in the fan-out.
        let observed = Mutex<[String: Observed]>([:])
        let delivery = EventDelivery(runtime: runtime, logger: logger) { event, plugin in
            let lag = Date().timeIntervalSince(event.occurredAt) * 1000
            let key = event.workspaceID + "/" + plugin + "/" + event.type
            let now = ContinuousClock.now
            observed.withLock { $0[key, default: Observed()].record(lag: lag, at: now) }
        }
        let running = Task { try await delivery.run() }
        var subscribers: [Delivered] = []
        let subscriberPlugins = [
            (id: "example.echo", grants: ["events.subscribe:notes.*"], pacedRate: 5_000),
            (id: "example.audit", grants: ["storage.read", "storage.write", "events.subscribe:notes.*"], pacedRate: 500),
        ]
        for (pluginID, grants, pacedRate) in subscriberPlugins {
            let workspace = try await runtime.createWorkspace(id: "\(workspaceID)-\(subscribers.count)", name: "events", tenantID: "bench")
            _ = try await runtime.enable(workspace: workspace, pluginID: "example.notes", grants: ["storage.read", "storage.write", "events.publish:notes.*"], config: [:], caller: caller)
            _ = try await runtime.enable(workspace: workspace, pluginID: pluginID, grants: grants, config: [:], caller: caller)
            let publisher = try runtime.context(workspace: workspace, pluginID: "example.notes", caller: caller).storage
            let key = workspace.id + "/" + pluginID + "/notes.timed"
            let (events, perCommit) = (self.events, self.perCommit)
            let started = ContinuousClock.now
            try await publish(events, through: publisher, on: executor, payload: payload)
            let published = ContinuousClock.now - started
            let deadline = ContinuousClock.now + .seconds(120)
            while observed.withLock({ $0[key]?.count ?? 0 }) < events, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            let figures = observed.withLock { $0[key] } ?? Observed()

            // Latency at a pace the subscriber keeps up with: `pacedRate` events a second for 3 s, in
            // commits of `perCommit` from one publisher.
            let pacedKey = workspace.id + "/" + pluginID + "/notes.paced"
            let commits = pacedRate * 3 / perCommit
            let interval = Duration.seconds(Double(perCommit) / Double(pacedRate))
            let pacedStart = ContinuousClock.now
            for index in 0..<commits {
                try await Task.sleep(until: pacedStart + interval * index)
                var batch = WriteBatch()
                for _ in 0..<perCommit { batch.publish(type: "notes.paced", payload: payload) }
                _ = try await publisher.commit(batch)
            }
            let pacedDeadline = ContinuousClock.now + .seconds(60)
            while observed.withLock({ $0[pacedKey]?.count ?? 0 }) < commits * perCommit, ContinuousClock.now < pacedDeadline { try await Task.sleep(for: .milliseconds(10)) }
            let sorted = (observed.withLock { $0[pacedKey]?.lags } ?? []).sorted()
            func percentile(_ fraction: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))] }
            subscribers.append(Delivered(
                subscriber: pluginID, publishedPerSecond: Double(events) / published.benchSeconds,
                deliveredPerSecond: Double(figures.count) / ((figures.last ?? .now) - started).benchSeconds, pacedRate: pacedRate,
                lagP50: percentile(0.5), lagP99: percentile(0.99)))
        }
        // 10 subscribers: the echo plugin and 9 copies of its library whose magic block names another id,
        // each a lane of its own, all in one workspace.
        let copies = try (1..<fanOut).map { try echoCopy(named: "bench.sub\($0)", in: folder) }
        for (index, path) in copies.enumerated() where runtime.plugin(id: "bench.sub\(index + 1)") == nil {
            _ = try await runtime.install(manifestText: subscribingEchoManifest(path: path, id: "bench.sub\(index + 1)"), baseDirectory: folder)
        }
        let fanWorkspace = try await runtime.createWorkspace(id: "\(workspaceID)-fan", name: "events", tenantID: "bench")
        _ = try await runtime.enable(workspace: fanWorkspace, pluginID: "example.notes", grants: ["storage.read", "storage.write", "events.publish:notes.*"], config: [:], caller: caller)
        let fanIDs = ["example.echo"] + (1..<fanOut).map { "bench.sub\($0)" }
        for id in fanIDs {
            _ = try await runtime.enable(workspace: fanWorkspace, pluginID: id, grants: ["events.subscribe:notes.*"], config: [:], caller: caller)
        }
        let fanPublisher = try runtime.context(workspace: fanWorkspace, pluginID: "example.notes", caller: caller).storage
        let fanEvents = events * 2 / 5
        let fanStart = ContinuousClock.now
        try await publish(fanEvents, through: fanPublisher, on: executor, payload: payload)
        let fanKeys = fanIDs.map { fanWorkspace.id + "/" + $0 + "/notes.timed" }
        let fanDeadline = ContinuousClock.now + .seconds(180)
        while observed.withLock({ state in fanKeys.contains { (state[$0]?.count ?? 0) < fanEvents } }), ContinuousClock.now < fanDeadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let fanLast = observed.withLock { state in fanKeys.compactMap { state[$0]?.last }.max() } ?? .now
        let fanDelivered = observed.withLock { state in fanKeys.map { state[$0]?.count ?? 0 }.min() ?? 0 }
        let fanOutFigures = FanOut(
            subscribers: fanIDs.count, events: fanEvents, eventsPerSecond: Double(fanDelivered) / (fanLast - fanStart).benchSeconds)

        running.cancel()
        _ = try? await running.value

        // 3. Baseline: the same rows written by the store's own statement, as many per commit, and read back
        // in order, with no grants, lanes or plugin.
        let scope = StorageScope(workspaceID: workspaceID + "-raw", pluginID: "example.notes")
        let baselineStart = ContinuousClock.now
        let (events, callers, perCommit) = (self.events, self.callers, self.perCommit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<callers {
                group.addTask(executorPreference: executor) {
                    for _ in stride(from: worker * perCommit, to: events, by: callers * perCommit) {
                        let rows = (0..<perCommit).map { _ in
                            PluginEvent(
                                id: UUID().uuidString.lowercased(), type: "notes.timed", workspaceID: scope.workspaceID, sourcePluginID: scope.pluginID, occurredAt: Date(),
                                payload: payload)
                        }
                        _ = try await store.commit(scope, writes: [], events: rows)
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
        return Result(puts: puts, batches: batches, subscribers: subscribers, fanOut: fanOutFigures, baselinePerSecond: Double(events) / baseline.benchSeconds)
    }
}

/// The echo plugin, subscribed to notes events: its event handler is the SDK's, which does nothing, so
/// what is measured is the host's delivery. Like the audit plugin, it takes up to 256 waiting events a call.
func subscribingEchoManifest(_ folder: String) -> String {
    subscribingEchoManifest(path: "\(folder)/libEchoPlugin.so", id: "example.echo")
}

func subscribingEchoManifest(path: String, id: String) -> String {
    """
    {"id": "\(id)", "name": "Echo", "version": "1.0.0", "sdk": "^1.0.0",
     "runtime": {"kind": "library", "path": "\(path)"},
     "permissions": ["events.subscribe:notes.*"],
     "subscriptions": ["notes.*"], "delivery": {"batchSize": 256},
     "routes": [{"method": "*", "path": "echo"}]}
    """
}

func auditManifest(_ folder: String) -> String {
    """
    {"id": "example.audit", "name": "Audit", "version": "1.0.0", "sdk": "^1.3.0",
     "runtime": {"kind": "library", "path": "\(folder)/libAuditPlugin.so"},
     "permissions": ["storage.read", "storage.write", "events.subscribe:notes.*"],
     "subscriptions": ["notes.*"], "delivery": {"batchSize": 256},
     "routes": [{"method": "GET", "path": "entries"}]}
    """
}

extension Duration {
    var benchSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension EventBenchmark {
    /// Publishes `count` events of type `notes.timed` from `callers` tasks, `perCommit` to a write batch.
    func publish(_ count: Int, through storage: any PluginStorage, on executor: (any TaskExecutor)?, payload: Data) async throws {
        let (callers, perCommit) = (self.callers, self.perCommit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<callers {
                group.addTask(executorPreference: executor) {
                    for _ in stride(from: worker * perCommit, to: count, by: callers * perCommit) {
                        var batch = WriteBatch()
                        for _ in 0..<perCommit { batch.publish(type: "notes.timed", payload: payload) }
                        _ = try await storage.commit(batch)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// A copy of the echo plugin's library in `folder` whose magic block names `id` instead of
    /// `example.echo`: another plugin, for the host, with the same code.
    func echoCopy(named id: String, in folder: String) throws -> String {
        var data = try Data(contentsOf: URL(fileURLWithPath: pluginsFolder + "/libEchoPlugin.so"))
        guard let tag = data.range(of: Data("PLUGIN-HOST-MAGC".utf8)),
              let name = data.range(of: Data("example.echo\u{0}".utf8), in: tag.upperBound..<min(data.count, tag.upperBound + 1024))
        else { throw CopyFailed() }
        var replacement = Data(id.utf8)
        replacement.append(contentsOf: [UInt8](repeating: 0, count: max(0, name.count - replacement.count)))
        data.replaceSubrange(name, with: replacement.prefix(name.count))
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/lib-\(id).so"
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    struct CopyFailed: Error, CustomStringConvertible {
        var description: String { "cannot find example.echo in the magic block of libEchoPlugin.so" }
    }
}
