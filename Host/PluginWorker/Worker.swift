import Foundation
import PluginHostFormats
import PluginSDK
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A plugin worker: loads one plugin library, as the host would, and runs the calls the host sends it.
///
/// The connection's loop thread (``run()``) reads the frames and starts each call as a task of its own,
/// run by that same thread; the tasks answer through the connection. Everything the plugin does outside its own memory (storage, events,
/// logs) is a frame to the host naming the call it is made in, and the host checks it against that
/// call's workspace and grants.
final class Worker: Sendable {
    let connection: WorkerConnection
    private let state = Mutex(State())

    private struct State {
        var plugin: (any Plugin)?
        var pluginID = ""
        var frameLimit: UInt32 = 1 << 20
        var bindings: [UInt32: Binding] = [:]
    }

    /// One enablement's context, as the host bound it.
    struct Binding: Sendable {
        var tenantID: String
        var workspaceID: String
        var grants: PermissionSet
        var config: [String: JSONValue]
    }

    init(connection: WorkerConnection) {
        self.connection = connection
    }

    /// Reads and handles frames until the host closes the connection.
    func run() {
        connection.run(limit: { state.withLock(\.frameLimit) }) { frame in
            do {
                try handle(frame)
            } catch {
                WorkerLog.fatal("the host sent a malformed \(frame.kind) frame: \(error)")
            }
        }
    }

    private func handle(_ frame: WorkerWire.Frame) throws {
        switch frame.kind {
        case .hello:
            load(try WorkerWire.hello(frame.payload))
        case .bind:
            let binding = try WorkerWire.binding(frame.payload)
            let config = (try? JSONDecoder().decode([String: JSONValue].self, from: binding.config)) ?? [:]
            let grants = PermissionSet(binding.grants.compactMap(Permission.init))
            state.withLock { $0.bindings[binding.id] = Binding(tenantID: binding.tenantID, workspaceID: binding.workspaceID, grants: grants, config: config) }
        case .unbind:
            let id = try WorkerWire.unbinding(frame.payload)
            state.withLock { _ = $0.bindings.removeValue(forKey: id) }
        case .request:
            let request = try WorkerWire.request(frame.payload)
            let call = frame.call
            guard let (plugin, context) = context(binding: request.binding, caller: request.caller, requestID: request.request.requestID, call: call) else { return }
            connection.spawn { [self] in
                do {
                    let response = try await plugin.handle(request.request, context: context)
                    let frame = WorkerWire.encode(response, call: call)
                    // The host would end a worker that sent a frame over its limit.
                    guard frame.count - 4 <= Int(state.withLock(\.frameLimit)) else {
                        return connection.send(WorkerWire.encode(.responseTooLarge(bytes: UInt64(response.body.count)), call: call))
                    }
                    connection.send(frame)
                } catch {
                    fail(call, error)
                }
            }
        case .events:
            let delivery = try WorkerWire.events(frame.payload)
            let call = frame.call
            guard let (plugin, context) = context(binding: delivery.binding, caller: delivery.caller, requestID: nil, call: call) else { return }
            run(call) { try await plugin.handle(events: delivery.events, context: context) }
        case .hook:
            let hook = try WorkerWire.hook(frame.payload)
            let call = frame.call
            guard let (plugin, context) = context(binding: hook.binding, caller: hook.caller, requestID: nil, call: call) else { return }
            switch hook.hook {
            case .enabled: run(call) { try await plugin.enabled(context: context) }
            case .disabled: run(call) { try await plugin.disabled(context: context) }
            }
        case .sdkReply:
            connection.answer(frame.call, payload: frame.payload)
        case .ping:
            connection.send(WorkerWire.encode(.pong, call: frame.call))
        case .shutdown:
            let plugin = state.withLock(\.plugin)
            connection.spawn { [connection] in
                await plugin?.shutdown()
                connection.exit(0)
            }
        case .ready, .loadFailed, .response, .failure, .done, .sdk, .log, .pong:
            WorkerLog.fatal("the host sent a \(frame.kind) frame, which only a worker sends")
        }
    }

    /// Checks and loads the library the host named, and says whether it could.
    private func load(_ hello: WorkerWire.Hello) {
        guard hello.version == WorkerWire.version else {
            connection.send(WorkerWire.encode(message: "this worker speaks frame version \(WorkerWire.version), the host \(hello.version): run the plugin-host-worker built with the host", kind: .loadFailed, call: 0))
            connection.exit(78)
        }
        // Its limits, before any of the plugin's code runs (and so before anything it does can raise them:
        // an unprivileged process cannot raise a hard limit).
        setLimit(RLIMIT_AS, hello.memoryBytes, "memory")
        setLimit(RLIMIT_NOFILE, UInt64(hello.openFiles), "open files")
        do {
            let loader = PluginLibraryLoader()
            let inspection = try loader.inspect(path: hello.libraryPath)
            guard inspection.magic.pluginID == hello.pluginID, inspection.magic.pluginVersion == hello.pluginVersion else {
                throw LoadError(path: hello.libraryPath, pluginID: hello.pluginID, reason: .magicUnreadable(
                    "the library declares \(inspection.magic.pluginID) \(inspection.magic.pluginVersion), the host expected \(hello.pluginID) \(hello.pluginVersion)"))
            }
            let plugin = try loader.load(path: hello.libraryPath, inspection: inspection)
            state.withLock {
                $0.plugin = plugin
                $0.pluginID = hello.pluginID
                $0.frameLimit = hello.maxFrameBytes
            }
            connection.send(WorkerWire.encode(WorkerWire.Ready(pid: getpid(), sdkVersion: SDKVersion.version)))
        } catch {
            connection.send(WorkerWire.encode(message: String(describing: error), kind: .loadFailed, call: 0))
            connection.exit(78)
        }
    }

    private func setLimit(_ resource: __rlimit_resource, _ value: UInt64, _ name: String) {
        guard value > 0 else { return }
        var limit = rlimit(rlim_cur: rlim_t(value), rlim_max: rlim_t(value))
        if setrlimit(__rlimit_resource_t(resource.rawValue), &limit) != 0 {
            let reason = String(cString: strerror(errno))
            connection.send(WorkerWire.encode(message: "the worker cannot limit its \(name) to \(value): \(reason)", kind: .loadFailed, call: 0))
            connection.exit(78)
        }
    }

    private func context(binding id: UInt32, caller: Caller, requestID: String?, call: UInt64) -> (any Plugin, WorkerContext)? {
        let (plugin, pluginID, binding) = state.withLock { ($0.plugin, $0.pluginID, $0.bindings[id]) }
        guard let plugin, let binding else {
            let why = plugin == nil ? "no plugin is loaded" : "binding \(id) is unknown"
            connection.send(WorkerWire.encode(.thrown("the worker cannot run call \(call): \(why)"), call: call))
            return nil
        }
        return (plugin, WorkerContext(call: call, binding: binding, pluginID: pluginID, caller: caller, requestID: requestID, connection: connection))
    }

    /// Runs an event delivery or a hook, and answers `done` or the failure.
    private func run(_ call: UInt64, _ body: @escaping @Sendable () async throws -> Void) {
        connection.spawn { [self] in
            do {
                try await body()
                connection.send(WorkerWire.encode(.done, call: call))
            } catch {
                fail(call, error)
            }
        }
    }

    private func fail(_ call: UInt64, _ error: any Error) {
        let failure: WorkerWire.Failure = (error as? PluginError).map { .plugin($0) } ?? .thrown(String(reflecting: error))
        connection.send(WorkerWire.encode(failure, call: call))
    }
}
