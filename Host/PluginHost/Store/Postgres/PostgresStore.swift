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
/// ``PostgresSchema`` refuse everything outside that scope. Registry writes send `NOTIFY plugin_host_registry` in their transaction, which
/// other hosts receive through ``PostgresListener``.
public final class PostgresStore: HostStore, Service {
    static let channel = "plugin_host_registry"

    let configuration: PostgresConfiguration
    let pool: PostgresPool
    private let listener: PostgresListener
    private let logger: Logger

    public init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.pool = PostgresPool(url: configuration.url, size: configuration.poolSize, statementTimeout: configuration.statementTimeout)
        self.listener = PostgresListener(url: configuration.url, channel: Self.channel, logger: logger)
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
                    + "serve as a role without them (see README, PostgreSQL roles)")
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

    public var registryChanges: AsyncStream<Void> { listener.changes }
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

    // MARK: Registry

    public func installPlugin(_ record: InstalledPluginRecord) async throws {
        let manifest = String(decoding: try JSONEncoder().encode(record.manifest), as: UTF8.self)
        try await registryWrite("plugin \(record.id)", PostgresStatement(
            "INSERT INTO plugins (id, version, manifest, sha256, installed_at) VALUES ($1, $2, $3, $4, $5) "
                + "ON CONFLICT (id) DO UPDATE SET version = excluded.version, manifest = excluded.manifest, sha256 = excluded.sha256, installed_at = excluded.installed_at",
            [.text(record.id), .text(record.manifest.version), .text(manifest), .text(record.sha256), .double(record.installedAt.timeIntervalSince1970)]
        ))
    }

    public func plugins() async throws -> [InstalledPluginRecord] {
        try await rows(Self.pluginsQuery).map(Self.plugin)
    }

    /// One read-only, repeatable-read transaction, so another host's change is seen whole or not at all.
    public func registry() async throws -> RegistrySnapshot {
        let results = try await pipeline([
            PostgresStatement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"), Self.registryScope,
            PostgresStatement(Self.pluginsQuery), PostgresStatement(Self.workspacesQuery + " ORDER BY id"), PostgresStatement(Self.enablementsQuery),
            PostgresStatement("COMMIT"),
        ])
        return RegistrySnapshot(
            plugins: try results[2].map(Self.plugin), workspaces: results[3].map(Self.workspace), enablements: try results[4].map(Self.enablement)
        )
    }

    private static let pluginsQuery = "SELECT manifest, sha256, installed_at FROM plugins ORDER BY id"
    private static let workspacesQuery = "SELECT id, tenant_id, name, created_at FROM workspaces"
    private static let enablementsQuery = "SELECT workspace_id, plugin_id, grants, config, updated_at FROM enablements ORDER BY workspace_id, plugin_id"

    private static func plugin(_ row: PostgresRow) throws -> InstalledPluginRecord {
        InstalledPluginRecord(
            manifest: try JSONDecoder().decode(PluginManifest.self, from: row[0].data ?? Data()),
            sha256: row[1].string ?? "", installedAt: Date(timeIntervalSince1970: row[2].double ?? 0)
        )
    }

    private static func workspace(_ row: PostgresRow) -> Workspace {
        Workspace(id: row[0].string ?? "", tenantID: row[1].string ?? "", name: row[2].string ?? "", createdAt: Date(timeIntervalSince1970: row[3].double ?? 0))
    }

    private static func enablement(_ row: PostgresRow) throws -> Enablement {
        Enablement(
            workspaceID: row[0].string ?? "", pluginID: row[1].string ?? "",
            grants: try JSONDecoder().decode([String].self, from: row[2].data ?? Data()),
            config: try JSONDecoder().decode([String: JSONValue].self, from: row[3].data ?? Data()),
            updatedAt: Date(timeIntervalSince1970: row[4].double ?? 0)
        )
    }

    public func deletePlugin(id: String) async throws -> Bool {
        try await registryWrite("plugin \(id)", PostgresStatement("DELETE FROM plugins WHERE id = $1 RETURNING id", [.text(id)])).count > 0
    }

    // MARK: Tenancy

    public func createTenant(_ tenant: Tenant) async throws {
        try await registryWrite("tenant \(tenant.id)", PostgresStatement(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
            [.text(tenant.id), .text(tenant.name), .double(tenant.createdAt.timeIntervalSince1970)]
        ))
    }

    public func tenant(id: String) async throws -> Tenant? {
        try await tenants(where: "WHERE id = $1", [.text(id)]).first
    }

    public func tenants() async throws -> [Tenant] {
        try await tenants(where: "", [])
    }

    private func tenants(where clause: String, _ parameters: [PostgresValue]) async throws -> [Tenant] {
        try await rows("SELECT id, name, created_at FROM tenants \(clause) ORDER BY id", parameters).map {
            Tenant(id: $0[0].string ?? "", name: $0[1].string ?? "", createdAt: Date(timeIntervalSince1970: $0[2].double ?? 0))
        }
    }

    public func createWorkspace(_ workspace: Workspace) async throws {
        try await registryWrite("workspace \(workspace.id)", PostgresStatement(
            "INSERT INTO workspaces (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)",
            [.text(workspace.id), .text(workspace.tenantID), .text(workspace.name), .double(workspace.createdAt.timeIntervalSince1970)]
        ))
    }

    public func workspace(id: String) async throws -> Workspace? {
        try await workspaces(where: "WHERE id = $1", [.text(id)]).first
    }

    public func workspaces(tenantID: String) async throws -> [Workspace] {
        try await workspaces(where: "WHERE tenant_id = $1", [.text(tenantID)])
    }

    private func workspaces(where clause: String, _ parameters: [PostgresValue]) async throws -> [Workspace] {
        try await rows(Self.workspacesQuery + " \(clause) ORDER BY id", parameters).map(Self.workspace)
    }

    public func createToken(_ token: TokenRecord) async throws {
        let workspaces = String(decoding: try JSONEncoder().encode(token.workspaces), as: UTF8.self)
        _ = try await mapped(uniqueMeans: "token") {
            try await pool.withConnection { connection in
                try connection.query(
                    "INSERT INTO tokens (secret_hash, id, role, subject, tenant_id, workspaces, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    [.text(token.secretHash), .text(token.id), .text(token.role.rawValue), .text(token.subject),
                     token.tenantID.map(PostgresValue.text) ?? .null, .text(workspaces), .double(token.createdAt.timeIntervalSince1970)]
                )
            }
        }
    }

    public func token(secretHash: String) async throws -> TokenRecord? {
        try await rows(Self.tokensQuery + " WHERE secret_hash = $1", [.text(secretHash)]).compactMap(Self.token).first
    }

    public func tokens(tenantID: String?) async throws -> [TokenRecord] {
        let rows = if let tenantID {
            try await rows(Self.tokensQuery + " WHERE tenant_id = $1 ORDER BY created_at, id", [.text(tenantID)])
        } else {
            try await rows(Self.tokensQuery + " WHERE tenant_id IS NULL ORDER BY created_at, id")
        }
        return rows.compactMap(Self.token)
    }

    public func deleteToken(id: String, tenantID: String?) async throws -> Bool {
        if let tenantID {
            return try await rows("DELETE FROM tokens WHERE id = $1 AND tenant_id = $2 RETURNING id", [.text(id), .text(tenantID)]).count > 0
        }
        // The last platform token stays. The count locks the platform tokens (FOR UPDATE), so two revokes
        // at once take turns, and the second counts without the row the first deleted.
        return try await rows(
            "DELETE FROM tokens WHERE id = $1 AND tenant_id IS NULL "
                + "AND (SELECT count(*) FROM (SELECT 1 FROM tokens WHERE tenant_id IS NULL FOR UPDATE) AS platform) > 1 RETURNING id",
            [.text(id)]).count > 0
    }

    private static let tokensQuery = "SELECT \(TokenRecord.columns) FROM tokens"

    private static func token(_ row: PostgresRow) -> TokenRecord? {
        TokenRecord(
            id: row[0].string, role: row[1].string, subject: row[2].string, tenantID: row[3].string, workspacesJSON: row[4].data,
            createdAt: row[5].double, secretHash: row[6].string
        )
    }

    // MARK: Enablements

    public func putEnablement(_ enablement: Enablement) async throws {
        let grants = String(decoding: try JSONEncoder().encode(enablement.grants), as: UTF8.self)
        let config = String(decoding: try JSONEncoder().encode(enablement.config), as: UTF8.self)
        try await registryWrite("enablement", PostgresStatement(
            "INSERT INTO enablements (workspace_id, plugin_id, grants, config, updated_at) VALUES ($1, $2, $3, $4, $5) "
                + "ON CONFLICT (workspace_id, plugin_id) DO UPDATE SET grants = excluded.grants, config = excluded.config, updated_at = excluded.updated_at",
            [.text(enablement.workspaceID), .text(enablement.pluginID), .text(grants), .text(config), .double(enablement.updatedAt.timeIntervalSince1970)]
        ))
    }

    public func enablements() async throws -> [Enablement] {
        try await pipeline([Self.registryScope, PostgresStatement(Self.enablementsQuery)])[1].map(Self.enablement)
    }

    public func deleteEnablement(workspaceID: String, pluginID: String) async throws -> Bool {
        try await registryWrite("enablement", PostgresStatement(
            "DELETE FROM enablements WHERE workspace_id = $1 AND plugin_id = $2 RETURNING plugin_id", [.text(workspaceID), .text(pluginID)]
        )).count > 0
    }

    // MARK: Settings

    public func setting(_ key: String) async throws -> String? {
        try await rows("SELECT value FROM settings WHERE key = $1", [.text(key)]).first?[0].string
    }

    public func setSetting(_ key: String, _ value: String) async throws {
        try await rows("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
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
        try await pipeline([
            PostgresStatement(
                "SELECT set_config('plugin_host.workspace', $1, true), set_config('plugin_host.plugin', $2, true)",
                [.text(scope.workspaceID), .text(scope.pluginID)]),
            statement,
        ])[1]
    }

    /// A registry change and its notification to the other hosts, committed together.
    @discardableResult
    private func registryWrite(_ what: String, _ statement: PostgresStatement) async throws -> [PostgresRow] {
        try await pipeline([
            Self.registryScope, statement, PostgresStatement("SELECT pg_notify($1, $2)", [.text(Self.channel), .text(what)]),
        ], uniqueMeans: what)[1]
    }

    @discardableResult
    private func rows(_ sql: String, _ parameters: [PostgresValue] = []) async throws -> [PostgresRow] {
        try await pipeline([PostgresStatement(sql, parameters)])[0]
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
