import CLibPQ
import Foundation
import Logging
import PluginHost
import PluginSDK
import Synchronization

/// KV get and put through the SDK (a plugin's `context.storage`, with grants, scope and the host's pool)
/// on PostgreSQL, against the same statements sent through raw libpq by the same number of connections,
/// and the same SDK calls on the embedded SQLite store.
struct StorageBenchmark {
    let pluginsFolder: String
    /// The serving role's URL and the owner's, of a database the benchmark may fill.
    let postgresURL: String?
    let migrationURL: String?
    let connections = 4
    /// Plugin calls in flight on the SDK side: more than connections, as when many requests share the
    /// host's pool. Raw libpq can have only one statement in flight per connection, so its side runs one
    /// thread per connection, which keeps every connection busy.
    let callers = 16
    let duration: Duration = .seconds(4)
    let keys = 100
    /// SDK and raw take turns going first (``alternatingRounds``), so neither gets a quieter machine; each
    /// figure is the median of its rounds (5: with 3, the ratio moved by 0.1 between runs).
    let rounds = 5

    struct Figures {
        var getsPerSecond: Double
        var putsPerSecond: Double
    }

    struct Result {
        var sdkPostgres: Figures?
        var rawPostgres: Figures?
        /// SDK gets from tasks on Swift's default executor, not the pool's threads: what running plugin
        /// code on the pool saves.
        var sdkPostgresDefaultExecutorGets: Double?
        var sdkSQLite: Figures
    }

    func run() async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var logger = Logger(label: "bench")
        logger.logLevel = .error

        let sqlite = try await SQLiteStore.open(folder: folder)
        let (sqliteStorage, sqliteExecutor) = try await storage(on: sqlite, folder: folder, logger: logger)
        let sdkSQLite = Figures(
            getsPerSecond: try await sdkGets(sqliteStorage, on: sqliteExecutor), putsPerSecond: try await sdkPuts(sqliteStorage, on: sqliteExecutor))
        await sqlite.close()

        guard let postgresURL else { return Result(sdkPostgres: nil, rawPostgres: nil, sdkSQLite: sdkSQLite) }
        let postgres = PostgresStore(
            configuration: PostgresConfiguration(url: postgresURL, migrationURL: migrationURL, poolSize: connections), logger: logger)
        let (postgresStorage, postgresExecutor) = try await storage(on: postgres, folder: folder, logger: logger)
        // The SDK side of a round: its figures, and the gets from the default executor for comparison.
        func throughSDK() async throws -> (Figures, Double) {
            let figures = Figures(
                getsPerSecond: try await sdkGets(postgresStorage, on: postgresExecutor), putsPerSecond: try await sdkPuts(postgresStorage, on: postgresExecutor))
            return (figures, try await sdkGets(postgresStorage, on: nil))
        }
        func throughLibpq() async throws -> Figures {
            Figures(getsPerSecond: try await rawMeasure(url: postgresURL, put: false), putsPerSecond: try await rawMeasure(url: postgresURL, put: true))
        }
        let (sdk, raw) = try await alternatingRounds(rounds, warmUp: false, throughSDK, throughLibpq)
        await postgres.close()
        return Result(
            sdkPostgres: Self.median(sdk.map(\.0)), rawPostgres: Self.median(raw), sdkPostgresDefaultExecutorGets: sdk.map(\.1).median, sdkSQLite: sdkSQLite)
    }

    private static func median(_ figures: [Figures]) -> Figures {
        Figures(getsPerSecond: figures.map(\.getsPerSecond).median, putsPerSecond: figures.map(\.putsPerSecond).median)
    }

    // MARK: Through the SDK

    /// The notes plugin's storage in a workspace, as the plugin gets it, with 100 keys written, and the
    /// executor its calls run on.
    private func storage(on store: any HostStore, folder: String, logger: Logger) async throws -> (any PluginStorage, (any TaskExecutor)?) {
        let runtime = try await PluginRuntime.standalone(configuration: inProcess(HostConfiguration(dataDirectory: folder)), store: store, logger: logger)
        if runtime.plugin(id: "example.notes") == nil {
            _ = try await runtime.install(manifestText: notesManifest(pluginsFolder), baseDirectory: pluginsFolder)
        }
        let workspace: Workspace
        if let existing = runtime.workspace(id: "bench-ws") {
            workspace = existing
        } else {
            _ = try await runtime.createTenant(id: "bench", name: "bench")
            workspace = try await runtime.createWorkspace(id: "bench-ws", name: "bench", tenantID: "bench")
        }
        let caller = Caller(subject: "bench", role: .member)
        _ = try await runtime.enable(workspace: workspace, pluginID: "example.notes", grants: ["storage.read", "storage.write"], config: [:], caller: caller)
        let storage = try runtime.context(workspace: workspace, pluginID: "example.notes", caller: caller).storage
        let value = Data(repeating: 0x61, count: 128)
        for key in 0..<keys { _ = try await storage.put("bench/\(key)", value) }
        return (storage, runtime.executor(workspace: workspace, pluginID: "example.notes"))
    }

    /// The calls run where the runtime runs the notes plugin's code (PostgreSQL: the pool's threads).
    private func sdkPuts(_ storage: any PluginStorage, on executor: (any TaskExecutor)?) async throws -> Double {
        let (keys, value) = (self.keys, Data(repeating: 0x61, count: 128))
        return try await measure(on: executor) { worker, index in _ = try await storage.put("bench/\((worker * 31 + index) % keys)", value) }
    }

    private func sdkGets(_ storage: any PluginStorage, on executor: (any TaskExecutor)?) async throws -> Double {
        let keys = self.keys
        return try await measure(on: executor) { worker, index in _ = try await storage.get("bench/\((worker * 31 + index) % keys)") }
    }

    private func measure(on executor: (any TaskExecutor)?, _ operation: @escaping @Sendable (Int, Int) async throws -> Void) async throws -> Double {
        try await concurrentRate(callers: callers, for: duration, on: executor, operation)
    }

    // MARK: Raw libpq, the same statements

    private static let scope = "SELECT set_config('plugin_host.workspace', $1, true), set_config('plugin_host.plugin', $2, true)"
    private static let get = "SELECT value, version FROM kv WHERE workspace_id = $1 AND plugin_id = $2 AND key = $3"
    private static let put = "INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES ($1, $2, $3, $4, 1, $5) "
        + "ON CONFLICT (workspace_id, plugin_id, key) DO UPDATE SET value = excluded.value, version = kv.version + 1, updated_at = excluded.updated_at "
        + "RETURNING version"

    /// `connections` threads, each with its own connection, each operation one pipeline of the scope
    /// and the statement, committed at its sync point, as the host sends it.
    private func rawMeasure(url: String, put: Bool) async throws -> Double {
        let total = Atomic<Int>(0)
        let failure = Mutex<String?>(nil)
        let deadline = ContinuousClock.now + duration
        let started = ContinuousClock.now
        let (keys, connections) = (self.keys, self.connections)
        let finished = DispatchGroup()
        for worker in 0..<connections {
            finished.enter()
            Thread {
                defer { finished.leave() }
                guard let connection = PQconnectdb(url) else {
                    failure.withLock { $0 = "cannot connect" }
                    return
                }
                guard PQstatus(connection) == CONNECTION_OK else {
                    let message = String(cString: PQerrorMessage(connection))
                    PQfinish(connection)
                    failure.withLock { $0 = "cannot connect: \(message)" }
                    return
                }
                defer { PQfinish(connection) }
                for (name, sql) in [("s", Self.scope), ("q", put ? Self.put : Self.get)] {
                    let result = PQprepare(connection, name, sql, 0, nil)
                    let ok = PQresultStatus(result) == PGRES_COMMAND_OK
                    PQclear(result)
                    if !ok {
                        failure.withLock { $0 = String(cString: PQerrorMessage(connection)) }
                        return
                    }
                }
                var count = 0
                let value = [UInt8](repeating: 0x61, count: 128)
                while ContinuousClock.now < deadline {
                    let key = Array("bench/\((worker * 31 + count) % keys)".utf8)
                    guard Self.pipeline(connection, key: key, value: put ? value : nil) else {
                        failure.withLock { $0 = String(cString: PQerrorMessage(connection)) }
                        return
                    }
                    count += 1
                }
                total.add(count, ordering: .relaxed)
            }.start()
        }
        // Wait on a thread of the benchmark's own, not on the cooperative pool.
        await withCheckedContinuation { continuation in
            Thread {
                finished.wait()
                continuation.resume()
            }.start()
        }
        if let message = failure.withLock({ $0 }) { throw BenchError("raw libpq: \(message)") }
        return Double(total.load(ordering: .relaxed)) / (ContinuousClock.now - started).seconds
    }

    private static func pipeline(_ connection: OpaquePointer, key: [UInt8], value: [UInt8]?) -> Bool {
        guard PQenterPipelineMode(connection) == 1 else { return false }
        var parameters: [[UInt8]] = [Array("bench-ws\0".utf8), Array("example.notes\0".utf8), key]
        var formats: [Int32] = [0, 0, 1]
        if let value {
            parameters.append(value)
            parameters.append(Array("\(Date().timeIntervalSince1970)\0".utf8))
            formats += [1, 0]
        }
        let sent = withPointers(parameters) { pointers in
            let lengths = parameters.map { Int32($0.count) }
            return PQsendQueryPrepared(connection, "s", 2, pointers, lengths, formats, 1) == 1
                && PQsendQueryPrepared(connection, "q", Int32(parameters.count), pointers, lengths, formats, 1) == 1
                && PQpipelineSync(connection) == 1
        }
        guard sent else { return false }
        var ok = true
        for _ in 0..<2 {
            guard let result = PQgetResult(connection) else { return false }
            let status = PQresultStatus(result)
            ok = ok && (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
            PQclear(result)
            while let extra = PQgetResult(connection) { PQclear(extra) }
        }
        guard let sync = PQgetResult(connection) else { return false }
        let synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
        PQclear(sync)
        return ok && synced && PQexitPipelineMode(connection) == 1
    }

    private static func withPointers<T>(_ buffers: [[UInt8]], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
        var pointers: [UnsafePointer<CChar>?] = []
        func next(_ index: Int) -> T {
            guard index < buffers.count else { return body(pointers) }
            return buffers[index].withUnsafeBufferPointer { buffer in
                pointers.append(UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))
                return next(index + 1)
            }
        }
        return next(0)
    }
}

func notesManifest(_ folder: String) -> String {
    """
    {"id": "example.notes", "name": "Notes", "version": "1.0.0", "sdk": "^1.0.0",
     "runtime": {"kind": "library", "path": "\(folder)/libNotesPlugin.so"},
     "permissions": ["storage.read", "storage.write", "events.publish:notes.*"],
     "routes": [{"method": "*", "path": "notes"}]}
    """
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Operations per second of `callers` concurrent tasks on `executor` for `duration`; each gets its
/// number and a count of its calls so far.
func concurrentRate(
    callers: Int, for duration: Duration, on executor: (any TaskExecutor)?, _ operation: @escaping @Sendable (Int, Int) async throws -> Void
) async throws -> Double {
    let deadline = ContinuousClock.now + duration
    let started = ContinuousClock.now
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for worker in 0..<callers {
            group.addTask(executorPreference: executor) {
                var count = 0
                while ContinuousClock.now < deadline {
                    try await operation(worker, count)
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    return Double(total) / (ContinuousClock.now - started).benchSeconds
}
