import Foundation
import PluginSDK

/// The statements of the registry, tenancy, tokens and settings, and the decoding of their rows: the
/// same for SQLite and PostgreSQL, written once. Plugin storage (`kv`) is not here: the two stores
/// write it differently (PostgreSQL in one scoped round trip, SQLite in a transaction).
package enum RegistrySQL {
    // MARK: Plugins

    static let pluginColumns = "manifest, sha256, installed_at, bundle"
    static let plugins = StoreStatement("SELECT \(pluginColumns) FROM plugins ORDER BY id")

    static func plugin(id: String) -> StoreStatement {
        StoreStatement("SELECT \(pluginColumns) FROM plugins WHERE id = $1", [.text(id)])
    }

    static func installPlugin(_ record: InstalledPluginRecord) throws -> StoreStatement {
        StoreStatement(
            "INSERT INTO plugins (id, version, manifest, sha256, installed_at, bundle) VALUES ($1, $2, $3, $4, $5, $6) "
                + "ON CONFLICT (id) DO UPDATE SET version = excluded.version, manifest = excluded.manifest, sha256 = excluded.sha256, "
                + "installed_at = excluded.installed_at, bundle = excluded.bundle",
            [.text(record.id), .text(record.manifest.version), .text(try json(record.manifest)), .text(record.sha256), .real(record.installedAt.timeIntervalSince1970),
             record.bundle.map { .text($0) } ?? .null],
            subject: "plugin \(record.id)"
        )
    }

    static func deletePlugin(id: String) -> StoreStatement {
        StoreStatement("DELETE FROM plugins WHERE id = $1 RETURNING id", [.text(id)])
    }

    static func plugin(_ row: [some StoreColumn]) throws -> InstalledPluginRecord {
        InstalledPluginRecord(
            manifest: try JSONDecoder().decode(PluginManifest.self, from: row[0].data ?? Data()),
            sha256: row[1].string ?? "", installedAt: date(row[2]), bundle: row[3].string
        )
    }

    // MARK: Bundles

    /// Keeps a bundle's bytes once, however many plugins or installs name it.
    static func putBundle(sha256: String, bytes: Data) -> StoreStatement {
        StoreStatement(
            "INSERT INTO bundles (sha256, bytes, created_at) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO UPDATE SET created_at = excluded.created_at",
            [.text(sha256), .blob(bytes), .real(Date().timeIntervalSince1970)], subject: "bundle \(sha256)"
        )
    }

    static func bundle(sha256: String) -> StoreStatement {
        StoreStatement("SELECT bytes FROM bundles WHERE sha256 = $1", [.text(sha256)])
    }

    /// Bundles no installed plugin names any more, kept for `grace` after they were last put: another host
    /// may be between putting a bundle and recording the plugin that names it.
    static func deleteUnusedBundles(grace: TimeInterval = 3600) -> StoreStatement {
        StoreStatement(
            "DELETE FROM bundles WHERE created_at < $1 AND sha256 NOT IN (SELECT bundle FROM plugins WHERE bundle IS NOT NULL)",
            [.real(Date().timeIntervalSince1970 - grace)])
    }

    // MARK: Tenants and workspaces

    static let tenants = StoreStatement("SELECT id, name, created_at FROM tenants ORDER BY id")

    static func tenant(id: String) -> StoreStatement {
        StoreStatement("SELECT id, name, created_at FROM tenants WHERE id = $1", [.text(id)])
    }

    static func createTenant(_ tenant: Tenant) -> StoreStatement {
        StoreStatement(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
            [.text(tenant.id), .text(tenant.name), .real(tenant.createdAt.timeIntervalSince1970)], subject: "tenant \(tenant.id)"
        )
    }

    static func tenant(_ row: [some StoreColumn]) -> Tenant {
        Tenant(id: row[0].string ?? "", name: row[1].string ?? "", createdAt: date(row[2]))
    }

    static let workspaceColumns = "id, tenant_id, name, created_at"
    static let workspaces = StoreStatement("SELECT \(workspaceColumns) FROM workspaces ORDER BY id")

    static func workspace(id: String) -> StoreStatement {
        StoreStatement("SELECT \(workspaceColumns) FROM workspaces WHERE id = $1", [.text(id)])
    }

    static func workspaces(tenantID: String) -> StoreStatement {
        StoreStatement("SELECT \(workspaceColumns) FROM workspaces WHERE tenant_id = $1 ORDER BY id", [.text(tenantID)])
    }

    static func createWorkspace(_ workspace: Workspace) -> StoreStatement {
        StoreStatement(
            "INSERT INTO workspaces (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)",
            [.text(workspace.id), .text(workspace.tenantID), .text(workspace.name), .real(workspace.createdAt.timeIntervalSince1970)],
            subject: "workspace \(workspace.id)"
        )
    }

    static func workspace(_ row: [some StoreColumn]) -> Workspace {
        Workspace(id: row[0].string ?? "", tenantID: row[1].string ?? "", name: row[2].string ?? "", createdAt: date(row[3]))
    }

    // MARK: Tokens

    static let tokenColumns = "id, role, subject, tenant_id, workspaces, created_at, secret_hash"

    static func createToken(_ token: TokenRecord) throws -> StoreStatement {
        StoreStatement(
            "INSERT INTO tokens (secret_hash, id, role, subject, tenant_id, workspaces, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [.text(token.secretHash), .text(token.id), .text(token.role.rawValue), .text(token.subject), StoreValue(token.tenantID),
             .text(try json(token.workspaces)), .real(token.createdAt.timeIntervalSince1970)],
            subject: "token"
        )
    }

    static func token(secretHash: String) -> StoreStatement {
        StoreStatement("SELECT \(tokenColumns) FROM tokens WHERE secret_hash = $1", [.text(secretHash)])
    }

    /// A tenant's tokens, or with `nil` the platform admins', oldest first.
    static func tokens(tenantID: String?) -> StoreStatement {
        if let tenantID {
            return StoreStatement("SELECT \(tokenColumns) FROM tokens WHERE tenant_id = $1 ORDER BY created_at, id", [.text(tenantID)])
        }
        return StoreStatement("SELECT \(tokenColumns) FROM tokens WHERE tenant_id IS NULL ORDER BY created_at, id")
    }

    /// A row of ``tokenColumns``; `nil` for a role this host does not know.
    static func token(_ row: [some StoreColumn]) -> TokenRecord? {
        guard let role = row[1].string.flatMap(CallerRole.init(rawValue:)) else { return nil }
        return TokenRecord(
            id: row[0].string ?? "", secretHash: row[6].string ?? "", role: role, subject: row[2].string ?? "", tenantID: row[3].string,
            workspaces: (try? JSONDecoder().decode([String].self, from: row[4].data ?? Data())) ?? [], createdAt: date(row[5])
        )
    }

    // MARK: Enablements

    static let enablementColumns = "workspace_id, plugin_id, grants, config, updated_at"
    static let enablements = StoreStatement("SELECT \(enablementColumns) FROM enablements ORDER BY workspace_id, plugin_id")

    static func enablement(workspaceID: String, pluginID: String) -> StoreStatement {
        StoreStatement("SELECT \(enablementColumns) FROM enablements WHERE workspace_id = $1 AND plugin_id = $2", [.text(workspaceID), .text(pluginID)])
    }

    static func putEnablement(_ enablement: Enablement) throws -> StoreStatement {
        StoreStatement(
            "INSERT INTO enablements (workspace_id, plugin_id, grants, config, updated_at) VALUES ($1, $2, $3, $4, $5) "
                + "ON CONFLICT (workspace_id, plugin_id) DO UPDATE SET grants = excluded.grants, config = excluded.config, updated_at = excluded.updated_at",
            [.text(enablement.workspaceID), .text(enablement.pluginID), .text(try json(enablement.grants)), .text(try json(enablement.config)),
             .real(enablement.updatedAt.timeIntervalSince1970)]
        )
    }

    static func deleteEnablement(workspaceID: String, pluginID: String) -> StoreStatement {
        StoreStatement("DELETE FROM enablements WHERE workspace_id = $1 AND plugin_id = $2 RETURNING plugin_id", [.text(workspaceID), .text(pluginID)])
    }

    static func enablement(_ row: [some StoreColumn]) throws -> Enablement {
        Enablement(
            workspaceID: row[0].string ?? "", pluginID: row[1].string ?? "",
            grants: try JSONDecoder().decode([String].self, from: row[2].data ?? Data()),
            config: try JSONDecoder().decode([String: JSONValue].self, from: row[3].data ?? Data()),
            updatedAt: date(row[4])
        )
    }

    // MARK: Settings

    static func setting(_ key: String) -> StoreStatement {
        StoreStatement("SELECT value FROM settings WHERE key = $1", [.text(key)])
    }

    static func setSetting(_ key: String, _ value: String) -> StoreStatement {
        StoreStatement("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
    }

    // MARK: Values

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    /// A stored time; a row whose time is not a finite number reads as the epoch.
    private static func date(_ column: some StoreColumn) -> Date {
        Date(timeIntervalSince1970: column.double.flatMap { $0.isFinite ? $0 : nil } ?? 0)
    }
}
