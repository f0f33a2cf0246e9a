import Foundation
import Logging
import PluginSDK
import ServiceLifecycle

/// Where and how to reach PostgreSQL.
public struct PostgresConfiguration: Sendable {
    /// The role the host serves as: subject to row-level security (not a superuser, no `BYPASSRLS`).
    public var url: String
    /// The role that owns the tables and runs migrations; `nil` runs them as ``url``'s role.
    public var migrationURL: String?
    /// Connections (and threads running libpq) at most.
    public var poolSize: Int
    /// Longest a statement may run before the server cancels it.
    public var statementTimeout: Duration
    /// How often the registry is re-read in case a change notification was missed.
    public var resyncInterval: Duration

    public init(url: String, migrationURL: String? = nil, poolSize: Int = 8, statementTimeout: Duration = .seconds(5), resyncInterval: Duration = .seconds(10)) {
        self.url = url
        self.migrationURL = migrationURL
        self.poolSize = poolSize
        self.statementTimeout = statementTimeout
        self.resyncInterval = resyncInterval
    }
}

/// The store of a real deployment: all state in PostgreSQL, shared by any number of host processes.
///
/// Plugin storage runs as one transaction of `set_config(workspace, plugin, local); statement` in one
/// round trip (a libpq pipeline whose sync point commits it); the row-level security policies of
/// ``PostgresSchema`` refuse everything outside that scope. Registry changes send `NOTIFY
/// plugin_host_registry` with what changed (``RegistryChange``) in their transaction, which the other
/// hosts receive through ``PostgresListener`` and apply by reading that record.
public final class PostgresStore: SQLStore, Service {
    static let channel = "plugin_host_registry"
    /// Notices of committed events: `<origin> <workspace>,<workspace>,...`.
    static let eventChannel = "plugin_host_events"

    let configuration: PostgresConfiguration
    let pool: PostgresPool
    private let listener: PostgresListener
    private let logger: Logger

    public init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.pool = PostgresPool(url: configuration.url, size: configuration.poolSize, statementTimeout: configuration.statementTimeout)
        self.listener = PostgresListener(url: configuration.url, channel: Self.channel, eventChannel: Self.eventChannel, logger: logger)
        self.logger = logger
    }

    /// Checks the serving role, applies migrations and starts listening for registry changes. Throws
    /// ``StoreError/unavailable(_:)`` while the database cannot be reached (the caller retries) and
    /// ``HostConfigurationError`` when the setup is wrong in a way retrying cannot fix.
    public func prepare() async throws {
        let role = try await mapped {
            try await pool.withConnection { connection in
                try connection.query("SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").first
            }
        }
        guard let role, let name = role[0].string else { throw StoreError.failed("cannot read the serving role") }
        if role[1] == .bool(true) || role[2] == .bool(true) {
            throw HostConfigurationError(
                "the database role \(name) is a superuser or has BYPASSRLS, so row-level security would not isolate tenants; "
                    + "serve as a role without them (see docs/postgresql.md, Roles)")
        }
        let migrationURL = configuration.migrationURL
        let statementTimeout = configuration.statementTimeout
        try await mapped {
            if let migrationURL {
                try await pool.withConnection { _ in
                    let owner = try PostgresConnection(url: migrationURL, statementTimeout: max(statementTimeout, .seconds(60)))
                    try PostgresSchema.migrate(owner, servingRole: name)
                }
            } else {
                try await pool.withConnection { try PostgresSchema.migrate($0, servingRole: nil) }
            }
        }
        listener.start()
    }

    package var registryChanges: RegistryChangeFeed? { listener.changes }

    package var eventNotices: EventNoticeFeed? { listener.eventNotices }

    /// One notice per call, after the events' commit: the other hosts' lanes of these workspaces wake
    /// at once instead of at their next poll.
    package func notifyEvents(workspaceIDs: [String]) async {
        let feed = listener.eventNotices
        // A notice's payload must stay under 8,000 bytes.
        var chunks: [[String]] = [[]]
        var size = 0
        for id in workspaceIDs {
            if size + id.utf8.count > 7_000, !chunks[chunks.count - 1].isEmpty {
                chunks.append([])
                size = 0
            }
            chunks[chunks.count - 1].append(id)
            size += id.utf8.count + 1
        }
        let statements = chunks.map { PostgresStatement("SELECT pg_notify($1, $2)", [.text(Self.eventChannel), .text(feed.payload($0))]) }
        do {
            _ = try await pool.run(statements)
        } catch {
            // The other hosts still poll; nothing is lost.
            logger.debug("event notice not sent", metadata: ["error": "\(error)"])
        }
    }
    public var registryResyncInterval: Duration? { configuration.resyncInterval }
    /// The pool's threads: a plugin's storage calls run there without a thread hop (see ``PostgresPool``).
    public var pluginExecutor: (any TaskExecutor)? { pool }

    /// Keeps the pool open until graceful shutdown, then closes it after the services above it.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    public func close() async {
        listener.stop()
        await pool.close()
    }

    // MARK: The shared registry's operations (SQLStore)

    package func rows(_ statement: StoreStatement) async throws -> [[PostgresValue]] {
        try await pipeline([Self.registryScope, PostgresStatement(statement)], uniqueMeans: statement.subject)[1]
    }

    /// The change and its notification to the other hosts, committed together (the pipeline's sync
    /// point commits both).
    package func change(_ statement: StoreStatement, _ change: RegistryChange) async throws -> [[PostgresValue]] {
        try await pipeline([
            Self.registryScope, PostgresStatement(statement), PostgresStatement("SELECT pg_notify($1, $2)", [.text(Self.channel), .text(listener.changes.payload(change))]),
        ], uniqueMeans: statement.subject)[1]
    }

    package func scopedRows(_ scope: StorageScope, _ statement: StoreStatement) async throws -> [[PostgresValue]] {
        try await scoped(scope, PostgresStatement(statement))
    }

    /// One pipeline: its sync point commits the statements together, and the first error rolls them
    /// all back.
    package func scopedTransaction(_ scope: StorageScope, _ statements: [StoreStatement]) async throws -> [[[PostgresValue]]] {
        Array(try await pipeline([Self.scope(scope)] + statements.map(PostgresStatement.init)).dropFirst())
    }

    package var dialect: SQLDialect { .postgres }

    /// One read-only, repeatable-read transaction, so another host's change is seen whole or not at all.
    package func snapshot(_ statements: [StoreStatement]) async throws -> [[[PostgresValue]]] {
        let results = try await pipeline(
            [PostgresStatement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"), Self.registryScope] + statements.map(PostgresStatement.init)
                + [PostgresStatement("COMMIT")]
        )
        return Array(results[2..<(2 + statements.count)])
    }

    package func ping() async throws {
        _ = try await pipeline([PostgresStatement("SELECT 1")])
    }

    package func deleteToken(id: String, tenantID: String?) async throws -> Bool {
        if let tenantID {
            return try await !rows(StoreStatement("DELETE FROM tokens WHERE id = $1 AND tenant_id = $2 RETURNING id", [.text(id), .text(tenantID)])).isEmpty
        }
        // The last platform token stays. The count locks the platform tokens (FOR UPDATE), so two revokes
        // at once take turns, and the second counts without the row the first deleted.
        return try await !rows(StoreStatement(
            "DELETE FROM tokens WHERE id = $1 AND tenant_id IS NULL "
                + "AND (SELECT count(*) FROM (SELECT 1 FROM tokens WHERE tenant_id IS NULL FOR UPDATE) AS platform) > 1 RETURNING id",
            [.text(id)])).isEmpty
    }

    // MARK: Plugin storage

    public func get(_ scope: StorageScope, key: String) async throws -> StoredValue? {
        try await scoped(scope, PostgresStatement(
            "SELECT value, version FROM kv WHERE workspace_id = $1 AND plugin_id = $2 AND key = $3",
            [.text(scope.workspaceID), .text(scope.pluginID), .bytea(Data(key.utf8))]
        )).first.map { StoredValue(key: key, value: $0[0].data ?? Data(), version: try ($0[1].int64 ?? 0).storedVersion()) }
    }

    public func put(_ scope: StorageScope, key: String, value: Data, expectedVersion: UInt64?) async throws -> UInt64 {
        let now = Date().timeIntervalSince1970
        let base: [PostgresValue] = [.text(scope.workspaceID), .text(scope.pluginID), .bytea(Data(key.utf8)), .bytea(value), .double(now)]
        let statement: PostgresStatement
        switch expectedVersion {
        case nil:
            statement = PostgresStatement(
                "INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES ($1, $2, $3, $4, 1, $5) "
                    + "ON CONFLICT (workspace_id, plugin_id, key) DO UPDATE SET value = excluded.value, version = kv.version + 1, updated_at = excluded.updated_at "
                    + "RETURNING version", base)
        case 0?:
            statement = PostgresStatement(
                "INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES ($1, $2, $3, $4, 1, $5) "
                    + "ON CONFLICT (workspace_id, plugin_id, key) DO NOTHING RETURNING version", base)
        case let expected?:
            statement = PostgresStatement(
                "UPDATE kv SET value = $4, version = version + 1, updated_at = $5 "
                    + "WHERE workspace_id = $1 AND plugin_id = $2 AND key = $3 AND version = $6 RETURNING version",
                base + [.int(Int64(bitPattern: expected))])
        }
        if let version = try await scoped(scope, statement).first?[0].int64 { return try version.storedVersion() }
        throw StoreError.versionConflict(current: try await get(scope, key: key)?.version ?? 0)
    }

    /// The whole batch in one round trip: one pipeline whose sync point commits it. A conditional write
    /// that finds another version calls `plugin_host_expect`, which raises `PH409` with the operation's
    /// index, and the error rolls back everything before it.
    package func commit(_ scope: StorageScope, writes: [StoreWrite], events: [PluginEvent]) async throws -> [UInt64] {
        let now = Date().timeIntervalSince1970
        var statements = [Self.scope(scope)]
        for (index, write) in writes.enumerated() {
            let key: [PostgresValue] = [.text(scope.workspaceID), .text(scope.pluginID), .bytea(Data(write.key.utf8))]
            let position = PostgresValue.int(Int64(index))
            let expected = write.expectedVersion.map { PostgresValue.int(Int64(bitPattern: $0)) }
            let row = "workspace_id = $1 AND plugin_id = $2 AND key = $3"
            switch (write.action, write.expectedVersion) {
            case (.put(let value), nil):
                statements.append(PostgresStatement(
                    "INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES ($1, $2, $3, $4, 1, $5) "
                        + "ON CONFLICT (workspace_id, plugin_id, key) DO UPDATE SET value = excluded.value, version = kv.version + 1, updated_at = excluded.updated_at "
                        + "RETURNING 0, version", key + [.bytea(value), .double(now)]))
            case (.put(let value), 0?):
                statements.append(PostgresStatement(
                    "WITH w AS (INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES ($1, $2, $3, $4, 1, $5) "
                        + "ON CONFLICT (workspace_id, plugin_id, key) DO NOTHING RETURNING version) "
                        + "SELECT plugin_host_expect(EXISTS (SELECT 1 FROM w), $6::integer), (SELECT version FROM w)", key + [.bytea(value), .double(now), position]))
            case (.put(let value), _?):
                statements.append(PostgresStatement(
                    "WITH w AS (UPDATE kv SET value = $4, version = version + 1, updated_at = $5 WHERE \(row) AND version = $6 RETURNING version) "
                        + "SELECT plugin_host_expect(EXISTS (SELECT 1 FROM w), $7::integer), (SELECT version FROM w)", key + [.bytea(value), .double(now), expected!, position]))
            case (.delete, nil):
                statements.append(PostgresStatement("DELETE FROM kv WHERE \(row) RETURNING 0, 1", key))
            case (.delete, 0?):
                statements.append(PostgresStatement(
                    "SELECT plugin_host_expect(NOT EXISTS (SELECT 1 FROM kv WHERE \(row)), $4::integer), 0", key + [position]))
            case (.delete, _?):
                statements.append(PostgresStatement(
                    "WITH w AS (DELETE FROM kv WHERE \(row) AND version = $4 RETURNING version) SELECT plugin_host_expect(EXISTS (SELECT 1 FROM w), $5::integer), 1",
                    key + [expected!, position]))
            case (.check, let version):
                // Locks the row until the batch commits, so no other writer changes it in between.
                statements.append(PostgresStatement(
                    "SELECT plugin_host_expect(coalesce((SELECT version FROM kv WHERE \(row) FOR SHARE), 0) = $4, $5::integer), $4",
                    key + [.int(Int64(bitPattern: version ?? 0)), position]))
            }
        }
        statements += events.map { PostgresStatement(EventSQL.insert($0)) }
        do {
            let results = try await pool.run(statements)
            return try writes.indices.map { index in
                guard let row = results[index + 1].first else { return 0 }  // a delete that found nothing
                return try (row[1].int64 ?? 0).storedVersion()
            }
        } catch let error as PostgresError where error.sqlState == "PH409" {
            // The message is the index of the operation whose condition failed.
            let index = error.message.split(whereSeparator: { !$0.isNumber }).first.flatMap { Int($0) }
            guard let index, writes.indices.contains(index) else { throw StoreError.failed(error.description) }
            let current = try await get(scope, key: writes[index].key)?.version ?? 0
            throw StoreError(code: .conditionFailed(index: index, current: current), message: "condition failed")
        } catch {
            return try await mapped { throw error }
        }
    }

    public func delete(_ scope: StorageScope, key: String) async throws -> Bool {
        try await scoped(scope, PostgresStatement(
            "DELETE FROM kv WHERE workspace_id = $1 AND plugin_id = $2 AND key = $3 RETURNING version",
            [.text(scope.workspaceID), .text(scope.pluginID), .bytea(Data(key.utf8))]
        )).count > 0
    }

    public func list(_ scope: StorageScope, prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage {
        var sql = "SELECT key, value, version FROM kv WHERE workspace_id = $1 AND plugin_id = $2 AND key >= $3"
        let lower = Data(prefix.utf8)
        var parameters: [PostgresValue] = [.text(scope.workspaceID), .text(scope.pluginID), .bytea(lower)]
        if let upper = Self.upperBound(of: lower) {
            parameters.append(.bytea(upper))
            sql += " AND key < $\(parameters.count)"
        }
        if let cursor {
            parameters.append(.bytea(Data(cursor.utf8)))
            sql += " AND key > $\(parameters.count)"
        }
        parameters.append(.int(Int64(limit + 1)))
        sql += " ORDER BY key LIMIT $\(parameters.count)"
        let entries = try await scoped(scope, PostgresStatement(sql, parameters)).map {
            StoredValue(key: String(decoding: $0[0].data ?? Data(), as: UTF8.self), value: $0[1].data ?? Data(), version: try ($0[2].int64 ?? 0).storedVersion())
        }
        let page = Array(entries.prefix(limit))
        return StoragePage(entries: page, nextCursor: entries.count > limit ? page.last?.key : nil)
    }

    /// The smallest byte string above every one starting with `prefix`; `nil` when there is none.
    static func upperBound(of prefix: Data) -> Data? {
        var bytes = Array(prefix)
        while let last = bytes.popLast() {
            if last < 0xFF {
                bytes.append(last + 1)
                return Data(bytes)
            }
        }
        return nil
    }

    // MARK: Helpers

    static let registryScope = PostgresStatement("SELECT set_config('plugin_host.registry', 'on', true)")

    /// `statement` in a transaction that can see only `scope`'s rows: the pipeline's sync point ends the
    /// transaction, so the `set_config(…, true)` (that is, `SET LOCAL`) holds for `statement` and no longer.
    private func scoped(_ scope: StorageScope, _ statement: PostgresStatement) async throws -> [PostgresRow] {
        try await pipeline([Self.scope(scope), statement])[1]
    }

    /// Sets the transaction's workspace and plugin, which the row-level security policies read.
    static func scope(_ scope: StorageScope) -> PostgresStatement {
        PostgresStatement(
            "SELECT set_config('plugin_host.workspace', $1, true), set_config('plugin_host.plugin', $2, true)",
            [.text(scope.workspaceID), .text(scope.pluginID)])
    }

    private func pipeline(_ statements: [PostgresStatement], uniqueMeans what: String? = nil) async throws -> [[PostgresRow]] {
        try await mapped(uniqueMeans: what) { try await pool.run(statements) }
    }

    /// Turns libpq failures into ``StoreError``s: lost connections, timeouts and a server shutting down
    /// are `unavailable` (503 `STORE_UNAVAILABLE`), a unique violation is `alreadyExists`.
    private func mapped<T>(uniqueMeans what: String? = nil, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError {
            let state = error.sqlState ?? ""
            if error.connectionLost || state.hasPrefix("08") || state.hasPrefix("57") || state == "53300" {
                throw StoreError.unavailable("PostgreSQL is unavailable: \(error.message)")
            }
            if state == PostgresError.uniqueViolation, let what { throw StoreError.alreadyExists(what) }
            throw StoreError.failed(error.description)
        }
    }
}

/// A setting that retrying cannot fix; the host stops with this message.
public struct HostConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
