import Foundation
import PluginSDK

/// A store on a SQL database: everything but plugin storage is written once, here, in terms of three
/// operations each store implements its own way (SQLite on its connection thread, PostgreSQL through
/// its pool, with row-level scoping and change notifications).
package protocol SQLStore: HostStore {
    associatedtype Column: StoreColumn

    /// Runs one statement; throws ``StoreError/alreadyExists(_:)`` naming the statement's subject when it
    /// breaks a unique key.
    func rows(_ statement: StoreStatement) async throws -> [[Column]]
    /// Runs a change of the registry, and tells the other hosts sharing the database what changed.
    func change(_ statement: StoreStatement, _ change: RegistryChange) async throws -> [[Column]]
    /// Runs reads that see one state of the database together.
    func snapshot(_ statements: [StoreStatement]) async throws -> [[[Column]]]
    /// Runs one statement that can see only `scope`'s rows of workspace data (row-level security where the
    /// database has it).
    func scopedRows(_ scope: StorageScope, _ statement: StoreStatement) async throws -> [[Column]]
    /// Runs statements in `scope` as one transaction: all take effect or none.
    func scopedTransaction(_ scope: StorageScope, _ statements: [StoreStatement]) async throws -> [[[Column]]]
    /// Where the event statements differ.
    var dialect: SQLDialect { get }
}

/// What a registry change touched, as the hosts sharing a database tell each other: each reads only
/// that record again.
package enum RegistryChange: Sendable, Hashable, CustomStringConvertible {
    case plugin(String)
    case tenant(String)
    case workspace(String)
    case enablement(workspaceID: String, pluginID: String)

    /// `plugin:<id>`, `tenant:<id>`, `workspace:<id>`, `enablement:<workspace>/<plugin>`: ids never hold
    /// `:` or `/`.
    package var description: String {
        switch self {
        case .plugin(let id): "plugin:\(id)"
        case .tenant(let id): "tenant:\(id)"
        case .workspace(let id): "workspace:\(id)"
        case .enablement(let workspace, let plugin): "enablement:\(workspace)/\(plugin)"
        }
    }

    package init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { return nil }
        switch parts[0] {
        case "plugin": self = .plugin(parts[1])
        case "tenant": self = .tenant(parts[1])
        case "workspace": self = .workspace(parts[1])
        case "enablement":
            let ids = parts[1].split(separator: "/", maxSplits: 1).map(String.init)
            guard ids.count == 2 else { return nil }
            self = .enablement(workspaceID: ids[0], pluginID: ids[1])
        default: return nil
        }
    }
}

extension SQLStore {
    // MARK: Registry

    package func installPlugin(_ record: InstalledPluginRecord) async throws {
        _ = try await change(RegistrySQL.installPlugin(record), .plugin(record.id))
    }

    package func plugins() async throws -> [InstalledPluginRecord] {
        try await rows(RegistrySQL.plugins).map(RegistrySQL.plugin)
    }

    package func plugin(id: String) async throws -> InstalledPluginRecord? {
        try await rows(RegistrySQL.plugin(id: id)).first.map(RegistrySQL.plugin)
    }

    package func deletePlugin(id: String) async throws -> Bool {
        try await !change(RegistrySQL.deletePlugin(id: id), .plugin(id)).isEmpty
    }

    package func putBundle(sha256: String, bytes: Data) async throws {
        _ = try await rows(RegistrySQL.putBundle(sha256: sha256, bytes: bytes))
    }

    package func bundle(sha256: String) async throws -> Data? {
        try await rows(RegistrySQL.bundle(sha256: sha256)).first?.first?.data
    }

    package func deleteUnusedBundles() async throws {
        _ = try await rows(RegistrySQL.deleteUnusedBundles())
    }

    // MARK: Idempotency keys

    package func claimIdempotencyKey(
        _ scope: IdempotencyScope, requestHash: String, claim: String, now: Date, staleBefore: Date, expiredBefore: Date
    ) async throws -> IdempotencyRecord? {
        let storage = scope.storage
        _ = try await scopedRows(storage, IdempotencySQL.clear(scope, staleBefore: staleBefore, expiredBefore: expiredBefore))
        if try await !scopedRows(storage, IdempotencySQL.claim(scope, requestHash: requestHash, claim: claim, now: now)).isEmpty { return nil }
        guard let row = try await scopedRows(storage, IdempotencySQL.read(scope)).first else {
            // Released between the two statements: as good as running.
            return IdempotencyRecord(requestHash: requestHash, response: nil)
        }
        return try IdempotencySQL.record(row)
    }

    package func completeIdempotencyKey(_ scope: IdempotencyScope, claim: String, with response: PluginResponse) async throws {
        _ = try await scopedRows(scope.storage, try IdempotencySQL.complete(scope, claim: claim, response))
    }

    package func releaseIdempotencyKey(_ scope: IdempotencyScope, claim: String) async throws {
        _ = try await scopedRows(scope.storage, IdempotencySQL.release(scope, claim: claim))
    }

    // MARK: Durable events

    package func claimEventLane(workspaceID: String, pluginID: String, owner: String, now: Date, until: Date) async throws -> EventLaneState? {
        let scope = StorageScope(workspaceID: workspaceID, pluginID: pluginID)
        let claim = EventSQL.claim(workspaceID: workspaceID, pluginID: pluginID, owner: owner, now: now, until: until)
        if let row = try await scopedRows(scope, claim).first { return EventSQL.lane(row) }
        // No lane yet (or another host's): make it at the head, which does nothing to one that exists.
        _ = try await scopedRows(scope, EventSQL.create(dialect, workspaceID: workspaceID, pluginID: pluginID))
        return try await scopedRows(scope, claim).first.map(EventSQL.lane)
    }

    package func events(workspaceID: String, after position: EventPosition, limit: Int) async throws -> [StoredEvent] {
        try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: ""), EventSQL.read(dialect, workspaceID: workspaceID, after: position, limit: limit))
            .map { EventSQL.event($0, workspaceID: workspaceID) }
    }

    package func advanceEventLane(workspaceID: String, pluginID: String, owner: String, to position: EventPosition, until: Date) async throws -> Bool {
        try await !scopedRows(
            StorageScope(workspaceID: workspaceID, pluginID: pluginID),
            EventSQL.advance(workspaceID: workspaceID, pluginID: pluginID, owner: owner, to: position, until: until)
        ).isEmpty
    }

    package func failEventDelivery(workspaceID: String, pluginID: String, owner: String, attempts: Int, retryAt: Date, error: String) async throws -> Bool {
        try await !scopedRows(
            StorageScope(workspaceID: workspaceID, pluginID: pluginID),
            EventSQL.fail(workspaceID: workspaceID, pluginID: pluginID, owner: owner, attempts: attempts, retryAt: retryAt, error: error)
        ).isEmpty
    }

    package func buryEvent(_ letter: DeadLetter, workspaceID: String, owner: String, advancingTo position: EventPosition, until: Date) async throws -> Bool {
        let results = try await scopedTransaction(StorageScope(workspaceID: workspaceID, pluginID: letter.pluginID), [
            EventSQL.bury(letter, workspaceID: workspaceID, owner: owner),
            EventSQL.advance(workspaceID: workspaceID, pluginID: letter.pluginID, owner: owner, to: position, until: until),
        ])
        return !results[1].isEmpty
    }

    package func releaseEventLane(workspaceID: String, pluginID: String, owner: String) async throws {
        _ = try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: pluginID), EventSQL.release(workspaceID: workspaceID, pluginID: pluginID, owner: owner))
    }

    package func createEventLane(workspaceID: String, pluginID: String) async throws {
        _ = try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: pluginID), EventSQL.create(dialect, workspaceID: workspaceID, pluginID: pluginID))
    }

    package func deleteEventLane(workspaceID: String, pluginID: String) async throws {
        _ = try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: pluginID), EventSQL.delete(workspaceID: workspaceID, pluginID: pluginID))
    }

    package func eventLanes(workspaceID: String) async throws -> [String: EventPosition] {
        var lanes: [String: EventPosition] = [:]
        for row in try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: ""), EventSQL.lanes(workspaceID: workspaceID)) {
            lanes[row[0].string ?? ""] = EventPosition(tx: row[1].int64 ?? 0, seq: row[2].int64 ?? 0)
        }
        return lanes
    }

    package func eventBacklog(workspaceID: String, after position: EventPosition, cap: Int) async throws -> Int {
        let rows = try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: ""), EventSQL.backlog(dialect, workspaceID: workspaceID, after: position, cap: cap))
        return Int(rows.first?[0].int64 ?? 0)
    }

    package func pruneEvents(workspaceID: String, before: Date) async throws {
        let scope = StorageScope(workspaceID: workspaceID, pluginID: "")
        let oldest = try await eventLanes(workspaceID: workspaceID).values.min()
        _ = try await scopedTransaction(scope, [
            EventSQL.prune(dialect, workspaceID: workspaceID, before: before, upTo: oldest),
            EventSQL.pruneDeadLetters(workspaceID: workspaceID, before: before),
        ])
    }

    package func deadLetters(workspaceID: String, pluginID: String?, states: [DeadLetter.State], limit: Int) async throws -> [DeadLetter] {
        try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: pluginID ?? ""), EventSQL.deadLetters(workspaceID: workspaceID, pluginID: pluginID, states: states, limit: limit))
            .map { EventSQL.deadLetter($0, workspaceID: workspaceID) }
    }

    package func transitionDeadLetters(workspaceID: String, id: String?, from: [DeadLetter.State], to: DeadLetter.State, now: Date) async throws -> [String] {
        try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: ""), EventSQL.transition(workspaceID: workspaceID, id: id, from: from, to: to, now: now))
            .compactMap { $0[0].string }
    }

    package func replayedDeadLetter(workspaceID: String, id: String, delivered: Bool, error: String?, now: Date) async throws {
        _ = try await scopedRows(StorageScope(workspaceID: workspaceID, pluginID: ""), EventSQL.replayed(workspaceID: workspaceID, id: id, delivered: delivered, error: error, now: now))
    }

    package func registry() async throws -> RegistrySnapshot {
        let results = try await snapshot([RegistrySQL.plugins, RegistrySQL.workspaces, RegistrySQL.enablements])
        return RegistrySnapshot(
            plugins: try results[0].map(RegistrySQL.plugin), workspaces: results[1].map(RegistrySQL.workspace),
            enablements: try results[2].map(RegistrySQL.enablement)
        )
    }

    // MARK: Tenancy

    package func createTenant(_ tenant: Tenant) async throws {
        _ = try await change(RegistrySQL.createTenant(tenant), .tenant(tenant.id))
    }

    package func tenant(id: String) async throws -> Tenant? {
        try await rows(RegistrySQL.tenant(id: id)).first.map(RegistrySQL.tenant)
    }

    package func tenants() async throws -> [Tenant] {
        try await rows(RegistrySQL.tenants).map(RegistrySQL.tenant)
    }

    package func createWorkspace(_ workspace: Workspace) async throws {
        _ = try await change(RegistrySQL.createWorkspace(workspace), .workspace(workspace.id))
    }

    package func workspace(id: String) async throws -> Workspace? {
        try await rows(RegistrySQL.workspace(id: id)).first.map(RegistrySQL.workspace)
    }

    package func workspaces(tenantID: String) async throws -> [Workspace] {
        try await rows(RegistrySQL.workspaces(tenantID: tenantID)).map(RegistrySQL.workspace)
    }

    // MARK: Tokens

    package func createToken(_ token: TokenRecord) async throws {
        _ = try await rows(RegistrySQL.createToken(token))
    }

    package func token(secretHash: String) async throws -> TokenRecord? {
        try await rows(RegistrySQL.token(secretHash: secretHash)).compactMap(RegistrySQL.token).first
    }

    package func tokens(tenantID: String?) async throws -> [TokenRecord] {
        try await rows(RegistrySQL.tokens(tenantID: tenantID)).compactMap(RegistrySQL.token)
    }

    // MARK: Enablements

    package func putEnablement(_ enablement: Enablement) async throws {
        _ = try await change(RegistrySQL.putEnablement(enablement), .enablement(workspaceID: enablement.workspaceID, pluginID: enablement.pluginID))
    }

    package func enablements() async throws -> [Enablement] {
        try await snapshot([RegistrySQL.enablements])[0].map(RegistrySQL.enablement)
    }

    package func enablement(workspaceID: String, pluginID: String) async throws -> Enablement? {
        try await snapshot([RegistrySQL.enablement(workspaceID: workspaceID, pluginID: pluginID)])[0].first.map(RegistrySQL.enablement)
    }

    package func deleteEnablement(workspaceID: String, pluginID: String) async throws -> Bool {
        try await !change(RegistrySQL.deleteEnablement(workspaceID: workspaceID, pluginID: pluginID), .enablement(workspaceID: workspaceID, pluginID: pluginID)).isEmpty
    }

    // MARK: Settings

    package func setting(_ key: String) async throws -> String? {
        try await rows(RegistrySQL.setting(key)).first?[0].string
    }

    package func setSetting(_ key: String, _ value: String) async throws {
        _ = try await rows(RegistrySQL.setSetting(key, value))
    }
}
