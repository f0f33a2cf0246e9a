import Foundation
import Logging
import PluginHost
import PluginSDK

/// ns per call of the echo plugin's handler called directly vs through the host's dispatch path
/// (enablement lookup, route and role check, grants, a context bound to the workspace).
struct DispatchBenchmark {
    let pluginsFolder: String
    /// Calls per round and rounds; PLUGIN_HOST_BENCH_DISPATCH_CALLS sets fewer calls and one round, to
    /// count instructions under callgrind, where time means nothing.
    let iterations = ProcessInfo.processInfo.environment["PLUGIN_HOST_BENCH_DISPATCH_CALLS"].flatMap(Int.init) ?? 200_000
    let rounds = ProcessInfo.processInfo.environment["PLUGIN_HOST_BENCH_DISPATCH_CALLS"] == nil ? 7 : 1

    struct Result {
        var directNanoseconds: Double
        var dispatchNanoseconds: Double
    }

    func run() async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await SQLiteStore.open(folder: folder)
        defer { Task { await store.close() } }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let runtime = try await PluginRuntime.standalone(configuration: inProcess(HostConfiguration(dataDirectory: folder)), store: store, logger: logger)
        _ = try await runtime.install(manifestText: echoManifest(pluginsFolder), baseDirectory: pluginsFolder)
        _ = try await runtime.createTenant(id: "bench", name: "bench")
        let workspace = try await runtime.createWorkspace(id: "ws", name: "ws", tenantID: "bench")
        let caller = Caller(subject: "bench", role: .member)
        _ = try await runtime.enable(workspace: workspace, pluginID: "example.echo", grants: [], config: [:], caller: caller)

        // The same library, loaded the way the host loads it, called with a context made once.
        let loader = PluginLibraryLoader()
        let path = pluginsFolder + "/libEchoPlugin.so"
        let plugin = try loader.load(path: path, inspection: try loader.inspect(path: path))
        let context = FixedContext()
        let request = PluginRequest(method: "POST", path: "echo", headers: ["content-type": "text/plain"], body: Data(repeating: 0x61, count: 64))

        var direct: [Double] = []
        var dispatched: [Double] = []
        for _ in 0..<rounds {
            direct.append(try await measure { _ = try await plugin.handle(request, context: context) })
            dispatched.append(try await measure { _ = try await runtime.dispatch(request, workspace: workspace, pluginID: "example.echo", caller: caller) })
        }
        return Result(directNanoseconds: direct.median, dispatchNanoseconds: dispatched.median)
    }

    private func measure(_ body: () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let started = clock.now
        for _ in 0..<iterations { try await body() }
        let elapsed = clock.now - started
        let (seconds, attoseconds) = elapsed.components
        return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations)
    }
}

/// `configuration` with library plugins in-process: what benchmarks 1 to 5 measure (6 compares workers).
func inProcess(_ configuration: HostConfiguration) -> HostConfiguration {
    var configuration = configuration
    configuration.workers.defaultIsolation = .inProcess
    return configuration
}

func echoManifest(_ folder: String) -> String {
    """
    {"id": "example.echo", "name": "Echo", "version": "1.0.0", "sdk": "^1.0.0",
     "runtime": {"kind": "library", "path": "\(folder)/libEchoPlugin.so"},
     "routes": [{"method": "*", "path": "echo"}]}
    """
}

/// The baseline's context: built once, services unused by echo.
struct FixedContext: PluginContext {
    struct Unused: PluginStorage, PluginEvents, PluginLogger {
        func get(_ key: String) async throws -> StoredValue? { nil }
        func put(_ key: String, _ value: Data) async throws -> UInt64 { 0 }
        func put(_ key: String, _ value: Data, ifVersion expected: UInt64) async throws -> UInt64 { 0 }
        func delete(_ key: String) async throws -> Bool { false }
        func list(prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage { StoragePage(entries: [], nextCursor: nil) }
        func commit(_ batch: WriteBatch) async throws -> WriteBatchResult { WriteBatchResult(outcomes: []) }
        func publish(type: String, payload: Data) async throws {}
        func log(level: PluginLogLevel, _ message: String, metadata: [String: String]) {}
    }

    var tenantID = "bench"
    var workspaceID = "ws"
    var pluginID = "example.echo"
    var caller = Caller(subject: "bench", role: .member)
    var grants = PermissionSet([])
    var config: [String: JSONValue] = [:]
    var storage: any PluginStorage = Unused()
    var events: any PluginEvents = Unused()
    var logger: any PluginLogger = Unused()
}
