import Foundation
import PluginSDK

/// Plugin storage confined to one ``StorageScope`` and checked against the grants.
struct ScopedStorage: PluginStorage {
    let store: any HostStore
    let outbox: EventOutbox
    let outages: StoreOutages
    let scope: StorageScope
    let grants: PermissionSet
    let maxKeyBytes: Int
    let maxValueBytes: Int

    /// The same storage with fewer grants (an SDK token's, within its enablement's).
    func narrowed(to grants: PermissionSet) -> ScopedStorage {
        ScopedStorage(store: store, outbox: outbox, outages: outages, scope: scope, grants: grants, maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes)
    }

    func get(_ key: String) async throws -> StoredValue? {
        try require(.storageRead)
        try check(key: key)
        return try await mapped { try await store.get(scope, key: key) }
    }

    func put(_ key: String, _ value: Data) async throws -> UInt64 {
        try await write(key, value, expected: nil)
    }

    func put(_ key: String, _ value: Data, ifVersion expected: UInt64) async throws -> UInt64 {
        try await write(key, value, expected: expected)
    }

    func delete(_ key: String) async throws -> Bool {
        try require(.storageWrite)
        try check(key: key)
        return try await mapped { try await store.delete(scope, key: key) }
    }

    func list(prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage {
        try require(.storageRead)
        guard (1...1000).contains(limit) else { throw PluginError.badRequest("limit must be between 1 and 1000, got \(limit)") }
        return try await mapped { try await store.list(scope, prefix: prefix, limit: limit, after: cursor) }
    }

    /// The most operations one batch may hold.
    static let maxBatchOperations = 256

    func commit(_ batch: WriteBatch) async throws -> WriteBatchResult {
        guard !batch.isEmpty else { return WriteBatchResult(outcomes: []) }
        guard batch.operations.count <= Self.maxBatchOperations else {
            throw PluginError.limitExceeded("a write batch may hold at most \(Self.maxBatchOperations) operations, this one has \(batch.operations.count)")
        }
        // Everything is checked before the store is reached: a refused batch writes nothing.
        var writes: [StoreWrite] = []
        var events: [PluginEvent] = []
        var operations: [(write: Int?, event: Int?)] = []
        for operation in batch.operations {
            switch operation {
            case .put(let key, let value, let expected):
                try require(.storageWrite)
                try check(key: key)
                guard value.count <= maxValueBytes else {
                    throw PluginError.limitExceeded("a stored value may have at most \(maxValueBytes) bytes, the one for \(key) has \(value.count)")
                }
                operations.append((writes.count, nil))
                writes.append(StoreWrite(key: key, action: .put(value), expectedVersion: expected))
            case .delete(let key, let expected):
                try require(.storageWrite)
                try check(key: key)
                operations.append((writes.count, nil))
                writes.append(StoreWrite(key: key, action: .delete, expectedVersion: expected))
            case .check(let key, let version):
                try require(.storageRead)
                try check(key: key)
                operations.append((writes.count, nil))
                writes.append(StoreWrite(key: key, action: .check, expectedVersion: version))
            case .publish(let type, let payload):
                operations.append((nil, events.count))
                events.append(try ScopedEvents.event(type: type, payload: payload, workspaceID: scope.workspaceID, pluginID: scope.pluginID, grants: grants))
            }
        }
        let figures: [UInt64]
        do {
            figures = try await mapped { try await store.commit(scope, writes: writes, events: events) }
        } catch let error as StoreError {
            if case .conditionFailed(let index, let current) = error.code { throw PluginError.versionConflict(key: writes[index].key, current: current) }
            throw error
        }
        outbox.committed(workspaceID: scope.workspaceID, count: events.count)
        return WriteBatchResult(outcomes: operations.map { operation in
            if let event = operation.event { return .publish(eventID: events[event].id) }
            let index = operation.write!  // every operation is a write or an event
            switch writes[index].action {
            case .put: return .put(version: figures[index])
            case .delete: return .delete(existed: figures[index] != 0)
            case .check: return .check
            }
        })
    }

    private func write(_ key: String, _ value: Data, expected: UInt64?) async throws -> UInt64 {
        try require(.storageWrite)
        try check(key: key)
        guard value.count <= maxValueBytes else {
            throw PluginError.limitExceeded("a stored value may have at most \(maxValueBytes) bytes, this one has \(value.count)")
        }
        do {
            return try await mapped { try await store.put(scope, key: key, value: value, expectedVersion: expected) }
        } catch let error as StoreError {
            if case .versionConflict(let current) = error.code { throw PluginError.versionConflict(key: key, current: current) }
            throw error
        }
    }

    private func require(_ permission: Permission) throws {
        guard grants.contains(permission) else { throw PluginError.permissionDenied(permission) }
    }

    private func check(key: String) throws {
        guard !key.isEmpty, key.utf8.count <= maxKeyBytes else {
            throw PluginError.limitExceeded("a key must have 1 to \(maxKeyBytes) bytes, this one has \(key.utf8.count)")
        }
    }

    /// Store outages reach the plugin as ``PluginError/unavailable(_:)``, as the SDK promises, and are
    /// recorded: a plugin that passes the error on gets its caller ``HostError/storeUnavailable``.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .unavailable {
            outages.record()
            throw PluginError.unavailable("storage is unavailable; retry shortly")
        }
    }
}
