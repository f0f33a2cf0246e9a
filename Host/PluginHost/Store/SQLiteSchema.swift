/// The embedded store's schema as numbered migrations; `PRAGMA user_version` records how many ran.
enum SQLiteSchema {
    static let migrations: [String] = [
        """
        CREATE TABLE plugins (
            id TEXT PRIMARY KEY, version TEXT NOT NULL, manifest TEXT NOT NULL, sha256 TEXT NOT NULL, installed_at REAL NOT NULL);
        CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE workspaces (
            id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (id), name TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE INDEX workspaces_by_tenant ON workspaces (tenant_id);
        CREATE TABLE tokens (
            secret_hash TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, role TEXT NOT NULL, subject TEXT NOT NULL,
            tenant_id TEXT REFERENCES tenants (id), workspaces TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE enablements (
            workspace_id TEXT NOT NULL REFERENCES workspaces (id), plugin_id TEXT NOT NULL, grants TEXT NOT NULL,
            config TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (workspace_id, plugin_id));
        CREATE TABLE kv (
            workspace_id TEXT NOT NULL, plugin_id TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
            version INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (workspace_id, plugin_id, key)) WITHOUT ROWID;
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
        // Plugin bundles, by the SHA-256 of their file, and the bundle each plugin was installed from.
        """
        CREATE TABLE bundles (sha256 TEXT PRIMARY KEY, bytes BLOB NOT NULL, created_at REAL NOT NULL);
        ALTER TABLE plugins ADD COLUMN bundle TEXT REFERENCES bundles (sha256);
        """,
        // The first answer to each Idempotency-Key (status NULL while its request runs).
        """
        CREATE TABLE idempotency_keys (
            workspace_id TEXT NOT NULL, plugin_id TEXT NOT NULL, caller TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
            claim TEXT NOT NULL, status INTEGER, headers TEXT NOT NULL, body BLOB NOT NULL, created_at REAL NOT NULL,
            PRIMARY KEY (workspace_id, plugin_id, caller, key)) WITHOUT ROWID;
        CREATE INDEX idempotency_keys_by_age ON idempotency_keys (workspace_id, plugin_id, created_at);
        """,
        // Durable events (docs/events.md): the outbox, each subscriber's position in its workspace's
        // events, and the deliveries given up. One writer at a time makes `seq` the commit order; `tx` is
        // PostgreSQL's and always 0 here.
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, tx INTEGER NOT NULL DEFAULT 0, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL,
            type TEXT NOT NULL, source_plugin TEXT NOT NULL, occurred_at REAL NOT NULL, payload BLOB NOT NULL);
        CREATE INDEX events_by_workspace ON events (workspace_id, seq);
        CREATE TABLE event_positions (
            workspace_id TEXT NOT NULL, plugin_id TEXT NOT NULL, tx INTEGER NOT NULL, seq INTEGER NOT NULL,
            attempts INTEGER NOT NULL, next_attempt_at REAL NOT NULL, last_error TEXT,
            lease_owner TEXT NOT NULL, lease_until REAL NOT NULL, PRIMARY KEY (workspace_id, plugin_id)) WITHOUT ROWID;
        CREATE TABLE dead_letters (
            id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, plugin_id TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
            source_plugin TEXT NOT NULL, occurred_at REAL NOT NULL, payload BLOB NOT NULL, attempts INTEGER NOT NULL,
            last_error TEXT NOT NULL, state TEXT NOT NULL, dead_at REAL NOT NULL, updated_at REAL NOT NULL);
        CREATE INDEX dead_letters_by_workspace ON dead_letters (workspace_id, plugin_id, state, dead_at);
        """,
    ]

    static func migrate(_ connection: SQLiteConnection) throws {
        let applied = Int(try connection.query("PRAGMA user_version").first?[0].int64 ?? 0)
        for (index, migration) in migrations.enumerated() where index >= applied {
            try connection.transaction {
                try connection.execute(migration)
                try connection.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }
}
