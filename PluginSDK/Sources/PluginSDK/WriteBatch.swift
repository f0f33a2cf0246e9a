import Foundation

/// Storage writes, conditions and event publishes that ``PluginStorage/commit(_:)`` applies together:
/// all of them, or none.
///
/// Like etcd's `Txn` or DynamoDB's `TransactWriteItems`: conditions on key versions, writes, and events
/// that are stored in the same transaction as the writes, so a subscriber sees an event exactly when the
/// writes it announces are there. If one condition fails, nothing is written or published and `commit`
/// throws ``PluginError/versionConflict(key:current:)`` naming the key and its current version.
///
/// ```swift
/// var batch = WriteBatch()
/// try batch.put("note/\(id)", json: note, ifVersion: 0)
/// try batch.publish(type: "notes.created", json: note)
/// try await context.storage.commit(batch)
/// ```
///
/// Building a batch runs no storage call; the store is reached once, by `commit`, and holds no
/// connection while plugin code runs.
public struct WriteBatch: Sendable, Hashable {
    /// One step of a batch, in the order it was added.
    public enum Operation: Sendable, Hashable {
        /// Stores `value` under `key`; with `ifVersion`, only if the key's current version is that one
        /// (`0`: the key must not exist).
        case put(key: String, value: Data, ifVersion: UInt64?)
        /// Removes `key`; with `ifVersion`, only if its current version is that one.
        case delete(key: String, ifVersion: UInt64?)
        /// Writes nothing: the batch commits only if the current version of `key` is `version` (`0`: absent).
        case check(key: String, version: UInt64)
        /// Publishes an event of `type` with a JSON payload when the batch commits.
        case publish(type: String, payload: Data)
    }

    /// The steps, in order.
    public private(set) var operations: [Operation] = []

    /// An empty batch.
    public init() {}

    /// Adds a write of `value` under `key`, conditional on the key's version when `ifVersion` is given.
    public mutating func put(_ key: String, _ value: Data, ifVersion: UInt64? = nil) {
        operations.append(.put(key: key, value: value, ifVersion: ifVersion))
    }

    /// Adds a write of `value` encoded as JSON.
    public mutating func put<Value: Encodable>(_ key: String, json value: Value, ifVersion: UInt64? = nil) throws {
        put(key, try PluginJSON.encoder().encode(value), ifVersion: ifVersion)
    }

    /// Adds the removal of `key`, conditional on its version when `ifVersion` is given.
    public mutating func delete(_ key: String, ifVersion: UInt64? = nil) {
        operations.append(.delete(key: key, ifVersion: ifVersion))
    }

    /// Adds a condition: the batch commits only if `key`'s current version is `version` (`0`: absent).
    public mutating func check(_ key: String, version: UInt64) {
        operations.append(.check(key: key, version: version))
    }

    /// Adds an event, published only if the batch commits.
    public mutating func publish(type: String, payload: Data) {
        operations.append(.publish(type: type, payload: payload))
    }

    /// Adds an event whose payload is `payload` encoded as JSON.
    public mutating func publish<Payload: Encodable>(type: String, json payload: Payload) throws {
        publish(type: type, payload: try PluginJSON.encoder().encode(payload))
    }

    /// Whether the batch has no steps.
    public var isEmpty: Bool { operations.isEmpty }
}

/// What a committed ``WriteBatch`` did: one outcome per operation, in the batch's order.
public struct WriteBatchResult: Sendable, Hashable {
    /// What one operation did.
    public enum Outcome: Sendable, Hashable {
        /// A put: the key's new version.
        case put(version: UInt64)
        /// A delete: whether the key existed.
        case delete(existed: Bool)
        /// A condition that held.
        case check
        /// A publish: the new event's id, as its subscribers receive it.
        case publish(eventID: String)
    }

    /// One per operation, in order.
    public var outcomes: [Outcome]

    /// Creates a result.
    public init(outcomes: [Outcome]) {
        self.outcomes = outcomes
    }

    /// The ids of the events the batch published, in order.
    public var eventIDs: [String] {
        outcomes.compactMap { if case .publish(let id) = $0 { id } else { nil } }
    }
}
