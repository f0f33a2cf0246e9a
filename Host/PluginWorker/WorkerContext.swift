import Foundation
import PluginHostFormats
import PluginSDK

/// The ``PluginContext`` of one call in a worker. Its storage, events and logger are frames to the host
/// naming `call`: the host runs them with that call's workspace and grants, whatever the frame says.
struct WorkerContext: PluginContext {
    let call: UInt64
    let binding: Worker.Binding
    let pluginID: String
    let caller: Caller
    let requestID: String?
    let connection: WorkerConnection

    var tenantID: String { binding.tenantID }
    var workspaceID: String { binding.workspaceID }
    var grants: PermissionSet { binding.grants }
    var config: [String: JSONValue] { binding.config }
    var storage: any PluginStorage { WorkerStorage(call: call, connection: connection) }
    var events: any PluginEvents { WorkerEvents(call: call, connection: connection) }
    var logger: any PluginLogger { WorkerLogger(call: call, connection: connection) }
}

struct WorkerStorage: PluginStorage {
    let call: UInt64
    let connection: WorkerConnection

    func get(_ key: String) async throws -> StoredValue? {
        guard case .value(let stored) = try await sdk(.get(key: key)) else { throw unexpected("storage.get") }
        return stored
    }

    func put(_ key: String, _ value: Data) async throws -> UInt64 {
        try await write(.put(key: key, value: value, ifVersion: nil))
    }

    func put(_ key: String, _ value: Data, ifVersion expected: UInt64) async throws -> UInt64 {
        try await write(.put(key: key, value: value, ifVersion: expected))
    }

    func delete(_ key: String) async throws -> Bool {
        guard case .deleted(let deleted) = try await sdk(.delete(key: key)) else { throw unexpected("storage.delete") }
        return deleted
    }

    func list(prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage {
        // A limit out of range is the host's to refuse, with its message; one past UInt32 is sent as 0.
        guard case .page(let page) = try await sdk(.list(prefix: prefix, limit: UInt32(exactly: limit) ?? 0, after: cursor)) else { throw unexpected("storage.list") }
        return page
    }

    func commit(_ batch: WriteBatch) async throws -> WriteBatchResult {
        guard case .committed(let result) = try await sdk(.commit(batch)) else { throw unexpected("storage.commit") }
        return result
    }

    private func write(_ call: WorkerWire.SDKCall) async throws -> UInt64 {
        guard case .version(let version) = try await sdk(call) else { throw unexpected("storage.put") }
        return version
    }

    private func sdk(_ request: WorkerWire.SDKCall) async throws -> WorkerWire.SDKResult {
        try await connection.sdkCall(request, onBehalfOf: call)
    }
}

struct WorkerEvents: PluginEvents {
    let call: UInt64
    let connection: WorkerConnection

    func publish(type: String, payload: Data) async throws {
        guard case .published = try await connection.sdkCall(.publish(type: type, payload: payload), onBehalfOf: call) else { throw unexpected("events.publish") }
    }
}

struct WorkerLogger: PluginLogger {
    let call: UInt64
    let connection: WorkerConnection

    func log(level: PluginLogLevel, _ message: String, metadata: [String: String]) {
        connection.send(WorkerWire.encode(WorkerWire.Log(level: level, message: message, metadata: metadata), call: call))
    }
}

private func unexpected(_ operation: String) -> PluginError {
    .unavailable("the host answered \(operation) with a result of another call")
}

extension WorkerConnection {
    /// ``sdk(_:onBehalfOf:)``, with the host's refusal thrown as the ``PluginError`` it carries.
    func sdkCall(_ request: WorkerWire.SDKCall, onBehalfOf call: UInt64) async throws -> WorkerWire.SDKResult {
        let result = try await sdk(request, onBehalfOf: call)
        if case .failed(let error) = result { throw error }
        return result
    }
}
