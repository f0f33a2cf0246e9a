import Foundation
import PluginSDK
import ServiceLifecycle

/// The embedded store: one SQLite file under the host's data folder.
public final class SQLiteStore: HostStore, Service {
    private let database: SQLiteDatabase

    /// Opens (creating if needed) `folder/plugin-host.sqlite` and applies pending migrations.
    public static func open(folder: String) async throws -> SQLiteStore {
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

    // MARK: Registry

    public func installPlugin(_ record: InstalledPluginRecord) async throws {
        let manifest = String(decoding: try JSONEncoder().encode(record.manifest), as: UTF8.self)
        try await run(
            "INSERT INTO plugins (id, version, manifest, sha256, installed_at) VALUES (?, ?, ?, ?, ?) "
                + "ON CONFLICT (id) DO UPDATE SET version = excluded.version, manifest = excluded.manifest, sha256 = excluded.sha256, installed_at = excluded.installed_at",
            [.text(record.id), .text(record.manifest.version), .text(manifest), .text(record.sha256), .real(record.installedAt.timeIntervalSince1970)]
        )
    }

    public func plugins() async throws -> [InstalledPluginRecord] {
        try await rows("SELECT manifest, sha256, installed_at FROM plugins ORDER BY id").map { row in
            InstalledPluginRecord(
                manifest: try JSONDecoder().decode(PluginManifest.self, from: row[0].data ?? Data()),
                sha256: row[1].string ?? "", installedAt: Date(timeIntervalSince1970: row[2].double ?? 0)
            )
        }
    }

    public func deletePlugin(id: String) async throws -> Bool {
        try await changes("DELETE FROM plugins WHERE id = ?", [.text(id)]) > 0
    }

    // MARK: Tenancy

    public func createTenant(_ tenant: Tenant) async throws {
        try await insert("tenant \(tenant.id)", "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
                         [.text(tenant.id), .text(tenant.name), .real(tenant.createdAt.timeIntervalSince1970)])
    }

    public func tenant(id: String) async throws -> Tenant? {
        try await tenants(where: "WHERE id = ?", [.text(id)]).first
    }

    public func tenants() async throws -> [Tenant] {
        try await tenants(where: "", [])
    }

    private func tenants(where clause: String, _ bindings: [SQLiteValue]) async throws -> [Tenant] {
        try await rows("SELECT id, name, created_at FROM tenants \(clause) ORDER BY id", bindings).map {
            Tenant(id: $0[0].string ?? "", name: $0[1].string ?? "", createdAt: Date(timeIntervalSince1970: $0[2].double ?? 0))
        }
    }

    public func createWorkspace(_ workspace: Workspace) async throws {
        try await insert("workspace \(workspace.id)", "INSERT INTO workspaces (id, tenant_id, name, created_at) VALUES (?, ?, ?, ?)",
                         [.text(workspace.id), .text(workspace.tenantID), .text(workspace.name), .real(workspace.createdAt.timeIntervalSince1970)])
    }

    public func workspace(id: String) async throws -> Workspace? {
        try await workspaces(where: "WHERE id = ?", [.text(id)]).first
    }

    public func workspaces(tenantID: String) async throws -> [Workspace] {
        try await workspaces(where: "WHERE tenant_id = ?", [.text(tenantID)])
    }

    private func workspaces(where clause: String, _ bindings: [SQLiteValue]) async throws -> [Workspace] {
        try await rows("SELECT id, tenant_id, name, created_at FROM workspaces \(clause) ORDER BY id", bindings).map {
            Workspace(id: $0[0].string ?? "", tenantID: $0[1].string ?? "", name: $0[2].string ?? "", createdAt: Date(timeIntervalSince1970: $0[3].double ?? 0))
        }
    }

    public func createToken(_ token: TokenRecord) async throws {
        let workspaces = String(decoding: try JSONEncoder().encode(token.workspaces), as: UTF8.self)
        try await insert("token", "INSERT INTO tokens (secret_hash, id, role, subject, tenant_id, workspaces, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", [
            .text(token.secretHash), .text(token.id), .text(token.role.rawValue), .text(token.subject),
            token.tenantID.map(SQLiteValue.text) ?? .null, .text(workspaces), .real(token.createdAt.timeIntervalSince1970),
        ])
    }

    public func token(secretHash: String) async throws -> TokenRecord? {
        try await rows(Self.tokensQuery + " WHERE secret_hash = ?", [.text(secretHash)]).compactMap(Self.token).first
    }

    public func tokens(tenantID: String?) async throws -> [TokenRecord] {
        try await rows(Self.tokensQuery + " WHERE tenant_id IS ? ORDER BY created_at, id", [tenantID.map(SQLiteValue.text) ?? .null]).compactMap(Self.token)
    }

    public func deleteToken(id: String, tenantID: String?) async throws -> Bool {
        // One statement, so the check that another platform token remains and the delete cannot interleave.
        try await changes(
            "DELETE FROM tokens WHERE id = ? AND tenant_id IS ? AND (tenant_id IS NOT NULL OR (SELECT count(*) FROM tokens WHERE tenant_id IS NULL) > 1)",
            [.text(id), tenantID.map(SQLiteValue.text) ?? .null]) > 0
    }

    private static let tokensQuery = "SELECT \(TokenRecord.columns) FROM tokens"

    private static func token(_ row: [SQLiteValue]) -> TokenRecord? {
        TokenRecord(
            id: row[0].string, role: row[1].string, subject: row[2].string, tenantID: row[3].string, workspacesJSON: row[4].data,
            createdAt: row[5].double, secretHash: row[6].string
        )
    }

    // MARK: Enablements

    public func putEnablement(_ enablement: Enablement) async throws {
        let grants = String(decoding: try JSONEncoder().encode(enablement.grants), as: UTF8.self)
        let config = String(decoding: try JSONEncoder().encode(enablement.config), as: UTF8.self)
        try await run(
            "INSERT INTO enablements (workspace_id, plugin_id, grants, config, updated_at) VALUES (?, ?, ?, ?, ?) "
                + "ON CONFLICT (workspace_id, plugin_id) DO UPDATE SET grants = excluded.grants, config = excluded.config, updated_at = excluded.updated_at",
            [.text(enablement.workspaceID), .text(enablement.pluginID), .text(grants), .text(config), .real(enablement.updatedAt.timeIntervalSince1970)]
        )
    }

    public func enablements() async throws -> [Enablement] {
        try await rows("SELECT workspace_id, plugin_id, grants, config, updated_at FROM enablements ORDER BY workspace_id, plugin_id").map { row in
            Enablement(
                workspaceID: row[0].string ?? "", pluginID: row[1].string ?? "",
                grants: try JSONDecoder().decode([String].self, from: row[2].data ?? Data()),
                config: try JSONDecoder().decode([String: JSONValue].self, from: row[3].data ?? Data()),
                updatedAt: Date(timeIntervalSince1970: row[4].double ?? 0)
            )
        }
    }

    public func deleteEnablement(workspaceID: String, pluginID: String) async throws -> Bool {
        try await changes("DELETE FROM enablements WHERE workspace_id = ? AND plugin_id = ?", [.text(workspaceID), .text(pluginID)]) > 0
    }

    // MARK: Settings

    public func setting(_ key: String) async throws -> String? {
        try await rows("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?[0].string
    }

    public func setSetting(_ key: String, _ value: String) async throws {
        try await run("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
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
            try Self.mapped {
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
        try await database.withConnection { connection in try Self.mapped { try connection.query(sql, bindings) } }
    }

    private func run(_ sql: String, _ bindings: [SQLiteValue]) async throws {
        _ = try await rows(sql, bindings)
    }

    private func changes(_ sql: String, _ bindings: [SQLiteValue]) async throws -> Int {
        try await database.withConnection { connection in
            try Self.mapped {
                try connection.query(sql, bindings)
                return connection.changes
            }
        }
    }

    private func insert(_ what: String, _ sql: String, _ bindings: [SQLiteValue]) async throws {
        do {
            try await run(sql, bindings)
        } catch let error as StoreError where error.code == .failed && error.message.contains("UNIQUE") {
            throw StoreError.alreadyExists(what)
        }
    }

    private static func mapped<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SQLiteError {
            throw StoreError.failed(error.description)
        }
    }
}
