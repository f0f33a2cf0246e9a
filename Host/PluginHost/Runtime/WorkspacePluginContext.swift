import Foundation
import Logging
import PluginSDK

/// The host's ``PluginContext``: everything in it is bound to one (tenant, workspace, plugin) when it is
/// made, and nothing in it can be re-pointed at another workspace.
struct WorkspacePluginContext: PluginContext {
    let tenantID: String
    let workspaceID: String
    let pluginID: String
    let caller: Caller
    let grants: PermissionSet
    let config: [String: JSONValue]
    let storage: any PluginStorage
    let events: any PluginEvents
    let logger: any PluginLogger
}

/// Plugin storage confined to one ``StorageScope`` and checked against the grants.
struct ScopedStorage: PluginStorage {
    let store: any HostStore
    let scope: StorageScope
    let grants: PermissionSet
    let maxKeyBytes: Int
    let maxValueBytes: Int

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

    /// Store outages reach the plugin as ``PluginError/unavailable(_:)``, which it may pass on.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .unavailable {
            throw PluginError.unavailable("storage is unavailable; retry shortly")
        }
    }
}

/// Publishes into the context's workspace only, checked against the grants.
struct ScopedEvents: PluginEvents {
    let bus: any EventBus
    let workspaceID: String
    let pluginID: String
    let grants: PermissionSet

    func publish(type: String, payload: Data) async throws {
        guard EventPattern.isValidType(type) else {
            throw PluginError.badRequest("\"\(type)\" is not an event type: dot-separated segments of [a-z0-9_-]")
        }
        guard grants.allowsPublishing(type) else {
            throw PluginError.permissionDenied(.eventsPublish(EventPattern(type)!))
        }
        let event = PluginEvent(
            id: UUID().uuidString.lowercased(), type: type, workspaceID: workspaceID, sourcePluginID: pluginID,
            occurredAt: Date(), payload: payload
        )
        try await bus.publish(event)
    }
}

/// Plugin log records through swift-log, carrying the context's metadata. The metadata is assembled
/// only when a record is written, so calls that never log pay nothing for it.
struct SwiftLogPluginLogger: PluginLogger {
    let logger: Logger
    let pluginID: String
    let workspaceID: String
    let requestID: String?

    func log(level: PluginLogLevel, _ message: String, metadata: [String: String]) {
        let level: Logger.Level = switch level {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
        guard logger.logLevel <= level else { return }
        var merged: Logger.Metadata = ["plugin.id": "\(pluginID)", "workspace.id": "\(workspaceID)"]
        if let requestID { merged["request.id"] = "\(requestID)" }
        for (key, value) in metadata { merged[key] = "\(value)" }
        logger.log(level: level, "\(message)", metadata: merged)
    }
}
