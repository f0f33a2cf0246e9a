import Foundation
import PluginSDK

/// Everything the host keeps: the registry of plugins, tenants, workspaces, tokens, enablements, and the
/// plugins' own key-value data. SQLite is the embedded implementation; a server database is another.
///
/// Implementations never run blocking I/O on the caller's executor.
package protocol HostStore: Sendable {
    func installPlugin(_ record: InstalledPluginRecord) async throws
    func plugins() async throws -> [InstalledPluginRecord]
    func deletePlugin(id: String) async throws -> Bool
    /// Keeps a plugin bundle's bytes under the SHA-256 of its file (a bundle kept already stays as it is).
    func putBundle(sha256: String, bytes: Data) async throws
    func bundle(sha256: String) async throws -> Data?
    /// Takes an idempotency key for a request: `nil` when this call took it (the caller runs the request,
    /// then completes or releases it), else what the store holds for it. A key still running since before
    /// `staleBefore` (its host died) or first used before `expiredBefore` is taken afresh.
    /// `claim` names this taking of it.
    func claimIdempotencyKey(
        _ scope: IdempotencyScope, requestHash: String, claim: String, now: Date, staleBefore: Date, expiredBefore: Date
    ) async throws -> IdempotencyRecord?
    /// Records the answer to a key this request took (and still holds).
    func completeIdempotencyKey(_ scope: IdempotencyScope, claim: String, with response: PluginResponse) async throws
    /// Gives up a key this request took without an answer (the plugin did not run it), so that a retry
    /// runs it.
    func releaseIdempotencyKey(_ scope: IdempotencyScope, claim: String) async throws
    /// Forgets the bundles no installed plugin has named for an hour.
    func deleteUnusedBundles() async throws

    func createTenant(_ tenant: Tenant) async throws
    func tenant(id: String) async throws -> Tenant?
    func tenants() async throws -> [Tenant]

    func createWorkspace(_ workspace: Workspace) async throws
    func workspace(id: String) async throws -> Workspace?
    func workspaces(tenantID: String) async throws -> [Workspace]

    func createToken(_ token: TokenRecord) async throws
    func token(secretHash: String) async throws -> TokenRecord?
    /// A tenant's tokens, oldest first; with `tenantID` `nil`, the platform admins' tokens.
    func tokens(tenantID: String?) async throws -> [TokenRecord]
    /// Revokes a tenant's token (with `tenantID` `nil`, a platform admin's token, but never the last
    /// one, so that the host always has an administrator); `false` if nothing was revoked.
    func deleteToken(id: String, tenantID: String?) async throws -> Bool

    func putEnablement(_ enablement: Enablement) async throws
    func enablements() async throws -> [Enablement]
    func deleteEnablement(workspaceID: String, pluginID: String) async throws -> Bool

    func setting(_ key: String) async throws -> String?
    func setSetting(_ key: String, _ value: String) async throws

    func get(_ scope: StorageScope, key: String) async throws -> StoredValue?
    /// Stores a value; with `expectedVersion` only if the current version is that one (`0`: absent).
    /// Returns the new version, or throws ``StoreError/versionConflict(current:)``.
    func put(_ scope: StorageScope, key: String, value: Data, expectedVersion: UInt64?) async throws -> UInt64
    func delete(_ scope: StorageScope, key: String) async throws -> Bool
    func list(_ scope: StorageScope, prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage

    // MARK: Write batches and durable events (docs/events.md)

    /// Applies `writes` and stores `events` (all of `scope`'s workspace) in one transaction: all or
    /// nothing. Returns one figure per write: a put's new version, 1 or 0 for whether a delete found its
    /// key, a check's version. A failed condition throws ``StoreError/Code/conditionFailed(index:current:)``.
    func commit(_ scope: StorageScope, writes: [StoreWrite], events: [PluginEvent]) async throws -> [UInt64]
    /// Takes the lease of a subscriber's lane (making the lane at the workspace's head if it has none),
    /// until `until`; `nil` while another host holds it.
    func claimEventLane(workspaceID: String, pluginID: String, owner: String, now: Date, until: Date) async throws -> EventLaneState?
    /// Up to `limit` events of the workspace after `position`, in order.
    func events(workspaceID: String, after position: EventPosition, limit: Int) async throws -> [StoredEvent]
    /// Moves the lane to `position`, clearing its failures; `false` when this host no longer holds it.
    func advanceEventLane(workspaceID: String, pluginID: String, owner: String, to position: EventPosition, until: Date) async throws -> Bool
    /// Records a failed attempt; `false` when this host no longer holds the lane.
    func failEventDelivery(workspaceID: String, pluginID: String, owner: String, attempts: Int, retryAt: Date, error: String) async throws -> Bool
    /// Keeps `letter` and moves the lane past its event, in one transaction; `false` when this host no
    /// longer holds the lane.
    func buryEvent(_ letter: DeadLetter, workspaceID: String, owner: String, advancingTo position: EventPosition, until: Date) async throws -> Bool
    func releaseEventLane(workspaceID: String, pluginID: String, owner: String) async throws
    /// Makes a subscriber's lane at the workspace's head, unless it has one.
    func createEventLane(workspaceID: String, pluginID: String) async throws
    func deleteEventLane(workspaceID: String, pluginID: String) async throws
    /// The lanes of a workspace and their positions.
    func eventLanes(workspaceID: String) async throws -> [String: EventPosition]
    /// How many events wait after `position`, up to `cap`.
    func eventBacklog(workspaceID: String, after position: EventPosition, cap: Int) async throws -> Int
    /// Forgets delivered events older than `before` (those every lane is past) and replayed or discarded
    /// dead letters last changed before it.
    func pruneEvents(workspaceID: String, before: Date) async throws
    func deadLetters(workspaceID: String, pluginID: String?, states: [DeadLetter.State], limit: Int) async throws -> [DeadLetter]
    /// Moves one dead letter (`id`) or all of the workspace from a state in `from` to `to`; their ids.
    func transitionDeadLetters(workspaceID: String, id: String?, from: [DeadLetter.State], to: DeadLetter.State, now: Date) async throws -> [String]
    /// Records a replay's outcome.
    func replayedDeadLetter(workspaceID: String, id: String, delivered: Bool, error: String?, now: Date) async throws

    /// One round trip: throws when the store cannot serve now.
    func ping() async throws
    /// One plugin, workspace or enablement as stored now; `nil` when there is none.
    func plugin(id: String) async throws -> InstalledPluginRecord?
    func enablement(workspaceID: String, pluginID: String) async throws -> Enablement?
    /// Connects and migrates when that can fail transiently (a server database); the host retries it
    /// with backoff and reports not ready until it succeeds. The embedded store is ready once opened.
    func prepare() async throws
    /// Plugins, workspaces and enablements, read together so they agree with each other.
    func registry() async throws -> RegistrySnapshot
    /// Releases connections and threads; the store is unusable afterwards.
    func close() async
    /// What other host processes change in the registry; `nil` for a store only this process uses.
    var registryChanges: RegistryChangeFeed? { get }
    /// How often to re-read the registry in case a change notification was missed; `nil`: never.
    var registryResyncInterval: Duration? { get }
    /// Tells the other hosts sharing the store that events were committed in these workspaces.
    func notifyEvents(workspaceIDs: [String]) async
    /// Where other hosts sharing the store committed events; `nil` for a store only this process uses.
    var eventNotices: EventNoticeFeed? { get }
    /// Where the code of plugins that use storage runs, if not on Swift's default executor: a store whose
    /// blocking calls have threads of their own can run that code on them, so that a storage call from it
    /// is a direct call, with no hop to another thread and back.
    var pluginExecutor: (any TaskExecutor)? { get }
}

extension HostStore {
    package func prepare() async throws {}

    package var pluginExecutor: (any TaskExecutor)? { nil }
    package var registryChanges: RegistryChangeFeed? { nil }
    package var registryResyncInterval: Duration? { nil }
    /// No other process shares the store: nobody to tell, nobody telling.
    package func notifyEvents(workspaceIDs: [String]) async {}
    package var eventNotices: EventNoticeFeed? { nil }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case alreadyExists
        case notFound
        case versionConflict(current: UInt64)
        /// The write batch's operation at `index` found its key at version `current`.
        case conditionFailed(index: Int, current: UInt64)
        case unavailable
        case failed
    }

    public var code: Code
    public var message: String

    public static func alreadyExists(_ what: String) -> StoreError { StoreError(code: .alreadyExists, message: "\(what) already exists") }
    public static func notFound(_ what: String) -> StoreError { StoreError(code: .notFound, message: "\(what) not found") }
    public static func versionConflict(current: UInt64) -> StoreError { StoreError(code: .versionConflict(current: current), message: "version conflict") }
    public static func unavailable(_ why: String) -> StoreError { StoreError(code: .unavailable, message: why) }
    public static func failed(_ why: String) -> StoreError { StoreError(code: .failed, message: why) }

    public var description: String { message }
}

/// One write (or condition) of a batch, on a key of the batch's scope.
package struct StoreWrite: Sendable {
    package enum Action: Sendable {
        case put(Data)
        case delete
        /// Nothing is written: the batch needs the key at `expectedVersion`.
        case check
    }

    package var key: String
    package var action: Action
    /// The version the key must have (`0`: absent); `nil`: any.
    package var expectedVersion: UInt64?

    package init(key: String, action: Action, expectedVersion: UInt64?) {
        self.key = key
        self.action = action
        self.expectedVersion = expectedVersion
    }
}

extension Int64 {
    /// A stored value's version as the API gives it. The host writes 1, 2, …; a negative one was written
    /// by something else and is an error, not a trap.
    func storedVersion() throws -> UInt64 {
        guard let version = UInt64(exactly: self) else { throw StoreError.failed("a stored version is \(self), not a positive number") }
        return version
    }
}

extension String {
    /// The smallest string greater than every string that starts with `self`, for index range scans;
    /// `nil` when there is none (empty or all U+10FFFF).
    var prefixUpperBound: String? {
        var scalars = Array(unicodeScalars)
        while let last = scalars.popLast() {
            var next = last.value + 1
            if next == 0xD800 { next = 0xE000 }
            if let scalar = Unicode.Scalar(next) {
                scalars.append(scalar)
                return String(String.UnicodeScalarView(scalars))
            }
        }
        return nil
    }
}
