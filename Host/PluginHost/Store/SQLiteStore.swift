import CSQLite
import Foundation
import PluginSDK
import ServiceLifecycle

/// The embedded store: one SQLite file under the host's data folder.
public final class SQLiteStore: SQLStore, Service {
    private let database: SQLiteDatabase

    /// Opens (creating if needed) `folder/plugin-host.sqlite` and applies pending migrations.
    public static func open(folder: String) async throws -> SQLiteStore {
        // The shared statements use RETURNING (SQLite 3.35, 2021).
        guard sqlite3_libversion_number() >= 3_035_000 else {
            throw HostConfigurationError("this host needs SQLite 3.35 or later; the system library is \(String(cString: sqlite3_libversion()))")
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let database = try await SQLiteDatabase(path: URL(fileURLWithPath: folder).appendingPathComponent("plugin-host.sqlite").path)
            try await database.withConnection { try SQLiteSchema.migrate($0) }
            return SQLiteStore(database: database)
        } catch {
            throw StoreError.unavailable("cannot open the SQLite store in \(folder): \(error)")
        }
    }

    private init(database: SQLiteDatabase) {
        self.database = database
    }

    /// Keeps the database open until graceful shutdown, then closes it after the services above it.
    public func run() async throws {
        try? await gracefulShutdown()
        await database.close()
    }

    public func close() async {
        await database.close()
    }

    // MARK: The shared registry's operations (SQLStore)

    /// One connection sees every workspace: the statement's own conditions scope it.
    package func scopedRows(_ scope: StorageScope, _ statement: StoreStatement) async throws -> [[SQLiteValue]] {
        try await rows(statement)
    }

    package func scopedTransaction(_ scope: StorageScope, _ statements: [StoreStatement]) async throws -> [[[SQLiteValue]]] {
        try await snapshot(statements)
    }

    package var dialect: SQLDialect { .sqlite }

    package func rows(_ statement: StoreStatement) async throws -> [[SQLiteValue]] {
        try await database.withConnection { connection in try Self.mapped(statement) { try connection.query(statement.sqliteSQL, statement.values.map(SQLiteValue.init)) } }
    }

    /// No other process shares the file: there is nobody to tell.
    package func change(_ statement: StoreStatement, _ change: RegistryChange) async throws -> [[SQLiteValue]] {
        try await rows(statement)
    }

    package func snapshot(_ statements: [StoreStatement]) async throws -> [[[SQLiteValue]]] {
        try await database.withConnection { connection in
            try Self.mapped(nil) {
                try connection.transaction { try statements.map { try connection.query($0.sqliteSQL, $0.values.map(SQLiteValue.init)) } }
            }
        }
    }

    package func ping() async throws {
        _ = try await rows(StoreStatement("SELECT 1"))
    }

    package func deleteToken(id: String, tenantID: String?) async throws -> Bool {
        // One statement, so the check that another platform token remains and the delete cannot interleave.
        try await !rows(StoreStatement(
            "DELETE FROM tokens WHERE id = $1 AND tenant_id IS $2 AND (tenant_id IS NOT NULL OR (SELECT count(*) FROM tokens WHERE tenant_id IS NULL) > 1) RETURNING id",
            [.text(id), StoreValue(tenantID)]
        )).isEmpty
    }

    // MARK: Plugin storage

    public func get(_ scope: StorageScope, key: String) async throws -> StoredValue? {
        try await rows("SELECT value, version FROM kv WHERE workspace_id = ? AND plugin_id = ? AND key = ?",
                       [.text(scope.workspaceID), .text(scope.pluginID), .text(key)]).first.map {
            StoredValue(key: key, value: $0[0].data ?? Data(), version: try ($0[1].int64 ?? 0).storedVersion())
        }
    }

    public func put(_ scope: StorageScope, key: String, value: Data, expectedVersion: UInt64?) async throws -> UInt64 {
        let now = Date().timeIntervalSince1970
        let base: [SQLiteValue] = [.text(scope.workspaceID), .text(scope.pluginID), .text(key)]
        return try await database.withConnection { connection in
            try Self.mapped(nil) {
                try connection.transaction {
                    let current = try (connection.query("SELECT version FROM kv WHERE workspace_id = ? AND plugin_id = ? AND key = ?", base).first?[0].int64 ?? 0).storedVersion()
                    if let expectedVersion, current != expectedVersion {
                        throw StoreError.versionConflict(current: current)
                    }
                    guard let next = Int64(exactly: current + 1) else { throw StoreError.failed("the version of \(key) cannot go past \(current)") }
                    try connection.query(
                        "INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                            + "ON CONFLICT (workspace_id, plugin_id, key) DO UPDATE SET value = excluded.value, version = excluded.version, updated_at = excluded.updated_at",
                        base + [.blob(value), .integer(next), .real(now)]
                    )
                    return current + 1
                }
            }
        }
    }

    package func commit(_ scope: StorageScope, writes: [StoreWrite], events: [PluginEvent]) async throws -> [UInt64] {
        let now = Date().timeIntervalSince1970
        return try await database.withConnection { connection in
            try Self.mapped(nil) {
                try connection.transaction {
                    var outcomes: [UInt64] = []
                    for (index, write) in writes.enumerated() {
                        let key: [SQLiteValue] = [.text(scope.workspaceID), .text(scope.pluginID), .text(write.key)]
                        let current = try (connection.query("SELECT version FROM kv WHERE workspace_id = ? AND plugin_id = ? AND key = ?", key).first?[0].int64 ?? 0)
                            .storedVersion()
                        if let expected = write.expectedVersion, expected != current {
                            throw StoreError(code: .conditionFailed(index: index, current: current), message: "condition failed")
                        }
                        switch write.action {
                        case .check:
                            outcomes.append(current)
                        case .delete:
                            try connection.query("DELETE FROM kv WHERE workspace_id = ? AND plugin_id = ? AND key = ?", key)
                            outcomes.append(current == 0 ? 0 : 1)
                        case .put(let value):
                            guard let next = Int64(exactly: current + 1) else { throw StoreError.failed("the version of \(write.key) cannot go past \(current)") }
                            try connection.query(
                                "INSERT INTO kv (workspace_id, plugin_id, key, value, version, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                                    + "ON CONFLICT (workspace_id, plugin_id, key) DO UPDATE SET value = excluded.value, version = excluded.version, updated_at = excluded.updated_at",
                                key + [.blob(value), .integer(next), .real(now)])
                            outcomes.append(current + 1)
                        }
                    }
                    for event in events {
                        let insert = EventSQL.insert(event)
                        try connection.query(insert.sqliteSQL, insert.values.map(SQLiteValue.init))
                    }
                    return outcomes
                }
            }
        }
    }

    public func delete(_ scope: StorageScope, key: String) async throws -> Bool {
        try await changes("DELETE FROM kv WHERE workspace_id = ? AND plugin_id = ? AND key = ?",
                          [.text(scope.workspaceID), .text(scope.pluginID), .text(key)]) > 0
    }

    public func list(_ scope: StorageScope, prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage {
        var sql = "SELECT key, value, version FROM kv WHERE workspace_id = ? AND plugin_id = ? AND key >= ?"
        var bindings: [SQLiteValue] = [.text(scope.workspaceID), .text(scope.pluginID), .text(prefix)]
        if let upper = prefix.prefixUpperBound {
            sql += " AND key < ?"
            bindings.append(.text(upper))
        }
        if let cursor {
            sql += " AND key > ?"
            bindings.append(.text(cursor))
        }
        sql += " ORDER BY key LIMIT ?"
        bindings.append(.integer(Int64(limit + 1)))
        let entries = try await rows(sql, bindings).map {
            StoredValue(key: $0[0].string ?? "", value: $0[1].data ?? Data(), version: try ($0[2].int64 ?? 0).storedVersion())
        }
        let page = Array(entries.prefix(limit))
        return StoragePage(entries: page, nextCursor: entries.count > limit ? page.last?.key : nil)
    }

    // MARK: Helpers

    private func rows(_ sql: String, _ bindings: [SQLiteValue] = []) async throws -> [[SQLiteValue]] {
        try await database.withConnection { connection in try Self.mapped(nil) { try connection.query(sql, bindings) } }
    }

    private func changes(_ sql: String, _ bindings: [SQLiteValue]) async throws -> Int {
        try await database.withConnection { connection in
            try Self.mapped(nil) {
                try connection.query(sql, bindings)
                return connection.changes
            }
        }
    }

    /// SQLite's errors as ``StoreError``s, by their extended result codes: a unique or primary key
    /// violation means the statement's subject already exists.
    // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY, macros Swift does not import.
    private static let uniqueViolation = SQLITE_CONSTRAINT | (8 << 8)
    private static let primaryKeyViolation = SQLITE_CONSTRAINT | (6 << 8)

    private static func mapped<T>(_ statement: StoreStatement?, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SQLiteError {
            if error.code == uniqueViolation || error.code == primaryKeyViolation, let subject = statement?.subject {
                throw StoreError.alreadyExists(subject)
            }
            throw StoreError.failed(error.description)
        }
    }
}
