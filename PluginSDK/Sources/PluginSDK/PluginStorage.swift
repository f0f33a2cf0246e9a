import Foundation

/// Key-value storage scoped to one plugin in one workspace.
///
/// Every value carries a version that starts at 1 and grows by one on each write, which makes
/// optimistic concurrency possible with ``put(_:_:ifVersion:)``. Reads need `storage.read`, writes and
/// deletes need `storage.write`.
public protocol PluginStorage: Sendable {
    /// The value stored under `key`, or `nil`.
    func get(_ key: String) async throws -> StoredValue?

    /// Stores `value` under `key` unconditionally and returns its new version.
    @discardableResult
    func put(_ key: String, _ value: Data) async throws -> UInt64

    /// Compare-and-set: stores `value` only if the current version of `key` is `expected` (`0` means the
    /// key must not exist yet). Returns the new version, or throws ``PluginError/versionConflict(key:current:)``.
    @discardableResult
    func put(_ key: String, _ value: Data, ifVersion expected: UInt64) async throws -> UInt64

    /// Removes `key`; returns whether it existed.
    @discardableResult
    func delete(_ key: String) async throws -> Bool

    /// Up to `limit` entries whose keys start with `prefix`, in key order, after the key `cursor`.
    /// Pass the returned ``StoragePage/nextCursor`` to get the next page.
    func list(prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage

    /// Applies `batch` as one transaction: every condition holds and every write and publish is done, or
    /// none is. A failed condition throws ``PluginError/versionConflict(key:current:)``. Writes need
    /// `storage.write`, conditions `storage.read`, publishes an `events.publish` grant for their type.
    @discardableResult
    func commit(_ batch: WriteBatch) async throws -> WriteBatchResult
}

extension PluginStorage {
    /// The first page of entries whose keys start with `prefix`.
    public func list(prefix: String, limit: Int = 100) async throws -> StoragePage {
        try await list(prefix: prefix, limit: limit, after: nil)
    }

    /// Decodes the JSON value stored under `key`.
    public func get<Value: Decodable>(_ key: String, as type: Value.Type) async throws -> Value? {
        guard let stored = try await get(key) else { return nil }
        return try PluginJSON.decoder().decode(Value.self, from: stored.value)
    }

    /// Encodes `value` as JSON and stores it under `key`.
    @discardableResult
    public func put<Value: Encodable>(_ key: String, json value: Value) async throws -> UInt64 {
        try await put(key, PluginJSON.encoder().encode(value))
    }
}

/// A stored value and its version.
public struct StoredValue: Sendable, Hashable {
    /// The key it is stored under.
    public var key: String
    /// The bytes as they were put.
    public var value: Data
    /// Starts at 1 and grows by one with every write of the key.
    public var version: UInt64

    /// Creates a stored value.
    public init(key: String, value: Data, version: UInt64) {
        self.key = key
        self.value = value
        self.version = version
    }
}

/// One page of a ``PluginStorage/list(prefix:limit:after:)`` call.
public struct StoragePage: Sendable, Hashable {
    /// The entries, in key order.
    public var entries: [StoredValue]
    /// The cursor for the next page, or `nil` when this is the last one.
    public var nextCursor: String?

    /// Creates a page.
    public init(entries: [StoredValue], nextCursor: String?) {
        self.entries = entries
        self.nextCursor = nextCursor
    }
}
