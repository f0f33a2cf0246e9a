import Foundation
import Logging
import PluginSDK

/// What every call into one enabled plugin shares, made once when it is enabled (or the host starts):
/// the instance, the workspace it is bound to, and services confined to that workspace.
final class BoundPlugin: Sendable {
    let instance: any Plugin
    let tenantID: String
    let workspaceID: String
    let pluginID: String
    let grants: PermissionSet
    let config: [String: JSONValue]
    let storage: any PluginStorage
    let events: any PluginEvents
    let routes: [CompiledRoute]
    let logger: Logger
    let requestMetrics: PluginRequestMetrics
    /// How long a call may run (see ``PluginRuntime/timeout(of:)``).
    let timeout: Duration
    /// Where its calls run: the store's threads for an in-process plugin granted storage, if the store
    /// offers them (``HostStore/pluginExecutor``); `nil`, Swift's default executor.
    let executor: (any TaskExecutor)?

    init(instance: any Plugin, tenantID: String, workspaceID: String, pluginID: String, grants: PermissionSet, config: [String: JSONValue],
         storage: any PluginStorage, events: any PluginEvents, routes: [CompiledRoute], logger: Logger, requestMetrics: PluginRequestMetrics,
         timeout: Duration, executor: (any TaskExecutor)?) {
        self.timeout = timeout
        self.executor = executor
        self.instance = instance
        self.tenantID = tenantID
        self.workspaceID = workspaceID
        self.pluginID = pluginID
        self.grants = grants
        self.config = config
        self.storage = storage
        self.events = events
        self.routes = routes
        self.logger = logger
        self.requestMetrics = requestMetrics
    }
}

/// The host's ``PluginContext`` for one call: the bound plugin plus who is calling. Nothing in it can
/// be re-pointed at another workspace.
struct CallContext: PluginContext {
    let bound: BoundPlugin
    let caller: Caller
    let requestID: String?

    var tenantID: String { bound.tenantID }
    var workspaceID: String { bound.workspaceID }
    var pluginID: String { bound.pluginID }
    var grants: PermissionSet { bound.grants }
    var config: [String: JSONValue] { bound.config }
    var storage: any PluginStorage { bound.storage }
    var events: any PluginEvents { bound.events }
    var logger: any PluginLogger {
        SwiftLogPluginLogger(logger: bound.logger, pluginID: bound.pluginID, workspaceID: bound.workspaceID, requestID: requestID)
    }
}

/// A manifest route split into segments once, so matching a request allocates nothing per route.
struct CompiledRoute: Sendable {
    enum Segment: Sendable, Equatable {
        /// The segment's UTF-8 bytes.
        case literal([UInt8])
        case parameter
        case rest
    }

    let method: String
    let segments: [Segment]
    let minimumRole: CallerRole

    init(_ route: PluginManifest.Route) {
        method = route.method
        minimumRole = route.minimumRole
        let parts = route.path.split(separator: "/")
        segments = parts.enumerated().map { index, part in
            if part == "*" && index == parts.count - 1 { return .rest }
            if part.hasPrefix("{") && part.hasSuffix("}") { return .parameter }
            return .literal(Array(part.utf8))
        }
    }

    /// Whether a request for `path` (below `resources/`, empty segments ignored) takes this route.
    /// Compares the path's UTF-8 bytes in place: matching allocates nothing.
    func matches(method: String, path: String) -> Bool {
        guard self.method == "*" || self.method == method else { return false }
        var path = path
        return path.withUTF8(matches(path:))
    }

    private func matches(path: UnsafeBufferPointer<UInt8>) -> Bool {
        var position = 0
        for segment in segments {
            if case .rest = segment { return true }
            guard let part = Self.nextSegment(of: path, from: &position) else { return false }
            if case .literal(let bytes) = segment, !part.elementsEqual(bytes) { return false }
        }
        return Self.nextSegment(of: path, from: &position) == nil
    }

    /// The next non-empty segment of `path` at or after `position`, which is moved past it.
    private static func nextSegment(of path: UnsafeBufferPointer<UInt8>, from position: inout Int) -> Slice<UnsafeBufferPointer<UInt8>>? {
        let slash = UInt8(ascii: "/")
        while position < path.count && path[position] == slash { position += 1 }
        guard position < path.count else { return nil }
        let start = position
        while position < path.count && path[position] != slash { position += 1 }
        return path[start..<position]
    }
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

    /// What a plugin gets while the store is unreachable; passed on, the caller sees 503 `STORE_UNAVAILABLE`.
    static let unavailable = PluginError.unavailable("storage is unavailable; retry shortly")

    /// Store outages reach the plugin as ``PluginError/unavailable(_:)``, which it may pass on.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .unavailable {
            throw Self.unavailable
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
        _ = try await publishEvent(type: type, payload: payload)
    }

    /// Publishes and returns the new event's id.
    func publishEvent(type: String, payload: Data) async throws -> String {
        guard EventPattern.isValidType(type) else {
            throw PluginError.badRequest("\"\(type)\" is not an event type: dot-separated segments of [a-z0-9_-]")
        }
        guard grants.allowsPublishing(type) else {
            throw PluginError.permissionDenied(.eventsPublish(EventPattern(type)!))  // a valid type, checked above
        }
        let event = PluginEvent(
            id: UUID().uuidString.lowercased(), type: type, workspaceID: workspaceID, sourcePluginID: pluginID,
            occurredAt: Date(), payload: payload
        )
        try await bus.publish(event)
        return event.id
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
