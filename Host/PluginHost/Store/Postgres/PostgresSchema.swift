/// The PostgreSQL schema as numbered migrations, recorded in `plugin_host_migrations`.
///
/// Isolation lives in the database: the tables that hold workspace data (`kv`, `enablements`) have
/// row-level security enabled *and forced*, so the policies bind the tables' owner too. A row is visible
/// only inside a transaction that has set `plugin_host.workspace` (and, for plugin storage,
/// `plugin_host.plugin`) with `set_config(..., true)`, which is `SET LOCAL` with bound values. The
/// registry reads enablements of every workspace by setting `plugin_host.registry`, which no plugin call
/// path sets. A query without any of them sees no rows and cannot write any.
enum PostgresSchema {
    /// `pg_advisory_lock` key held while migrating, so hosts starting together migrate once.
    static let migrationLock: Int64 = 0x706c_7567_696e_0001

    static let migrations: [String] = [
        """
        CREATE TABLE plugins (
            id text PRIMARY KEY, version text NOT NULL, manifest text NOT NULL, sha256 text NOT NULL,
            installed_at double precision NOT NULL);
        CREATE TABLE tenants (id text PRIMARY KEY, name text NOT NULL, created_at double precision NOT NULL);
        CREATE TABLE workspaces (
            id text PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants (id), name text NOT NULL,
            created_at double precision NOT NULL);
        CREATE INDEX workspaces_by_tenant ON workspaces (tenant_id);
        CREATE TABLE tokens (
            secret_hash text PRIMARY KEY, id text NOT NULL UNIQUE, role text NOT NULL, subject text NOT NULL,
            tenant_id text REFERENCES tenants (id), workspaces text NOT NULL, created_at double precision NOT NULL);
        CREATE TABLE enablements (
            workspace_id text NOT NULL REFERENCES workspaces (id), plugin_id text NOT NULL, grants text NOT NULL,
            config text NOT NULL, updated_at double precision NOT NULL, PRIMARY KEY (workspace_id, plugin_id));
        CREATE TABLE kv (
            workspace_id text NOT NULL, plugin_id text NOT NULL, key bytea NOT NULL, value bytea NOT NULL,
            version bigint NOT NULL, updated_at double precision NOT NULL, PRIMARY KEY (workspace_id, plugin_id, key));
        CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);

        ALTER TABLE kv ENABLE ROW LEVEL SECURITY;
        ALTER TABLE kv FORCE ROW LEVEL SECURITY;
        CREATE POLICY kv_one_workspace_one_plugin ON kv
            USING (workspace_id = current_setting('plugin_host.workspace', true)
                   AND plugin_id = current_setting('plugin_host.plugin', true))
            WITH CHECK (workspace_id = current_setting('plugin_host.workspace', true)
                   AND plugin_id = current_setting('plugin_host.plugin', true));

        ALTER TABLE enablements ENABLE ROW LEVEL SECURITY;
        ALTER TABLE enablements FORCE ROW LEVEL SECURITY;
        CREATE POLICY enablements_workspace_or_registry ON enablements
            USING (current_setting('plugin_host.registry', true) = 'on'
                   OR workspace_id = current_setting('plugin_host.workspace', true))
            WITH CHECK (current_setting('plugin_host.registry', true) = 'on'
                   OR workspace_id = current_setting('plugin_host.workspace', true));
        """,
        // Plugin bundles, by the SHA-256 of their file, and the bundle each plugin was installed from:
        // every host sharing the database loads a plugin from here, not from a file on its own disk.
        """
        CREATE TABLE bundles (sha256 text PRIMARY KEY, bytes bytea NOT NULL, created_at double precision NOT NULL);
        ALTER TABLE plugins ADD COLUMN bundle text REFERENCES bundles (sha256);
        """,
        // The first answer to each Idempotency-Key (status NULL while its request runs), visible only in
        // its own workspace and plugin's scope, like plugin storage.
        """
        CREATE TABLE idempotency_keys (
            workspace_id text NOT NULL, plugin_id text NOT NULL, caller text NOT NULL, key text NOT NULL, request_hash text NOT NULL,
            claim text NOT NULL, status integer, headers text NOT NULL, body bytea NOT NULL, created_at double precision NOT NULL,
            PRIMARY KEY (workspace_id, plugin_id, caller, key));
        CREATE INDEX idempotency_keys_by_age ON idempotency_keys (workspace_id, plugin_id, created_at);
        ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
        ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
        CREATE POLICY idempotency_one_workspace_one_plugin ON idempotency_keys
            USING (workspace_id = current_setting('plugin_host.workspace', true)
                   AND plugin_id = current_setting('plugin_host.plugin', true))
            WITH CHECK (workspace_id = current_setting('plugin_host.workspace', true)
                   AND plugin_id = current_setting('plugin_host.plugin', true));
        """,
        // Durable events (docs/events.md): the outbox, each subscriber's position in its workspace's
        // events, and the deliveries given up, each visible only in its workspace's scope. `tx` is the
        // writing transaction: readers take only events of transactions older than every one still
        // running and go in (tx, seq) order, so an event that commits late is never skipped.
        // `plugin_host_expect` ends a write batch whose condition failed, naming the operation.
        """
        CREATE TABLE events (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
            id text NOT NULL UNIQUE, workspace_id text NOT NULL, type text NOT NULL, source_plugin text NOT NULL,
            occurred_at double precision NOT NULL, payload bytea NOT NULL);
        CREATE INDEX events_by_workspace ON events (workspace_id, tx, seq);
        CREATE TABLE event_positions (
            workspace_id text NOT NULL, plugin_id text NOT NULL, tx bigint NOT NULL, seq bigint NOT NULL,
            attempts integer NOT NULL, next_attempt_at double precision NOT NULL, last_error text,
            lease_owner text NOT NULL, lease_until double precision NOT NULL, PRIMARY KEY (workspace_id, plugin_id));
        CREATE TABLE dead_letters (
            id text PRIMARY KEY, workspace_id text NOT NULL, plugin_id text NOT NULL, event_id text NOT NULL, type text NOT NULL,
            source_plugin text NOT NULL, occurred_at double precision NOT NULL, payload bytea NOT NULL, attempts integer NOT NULL,
            last_error text NOT NULL, state text NOT NULL, dead_at double precision NOT NULL, updated_at double precision NOT NULL);
        CREATE INDEX dead_letters_by_workspace ON dead_letters (workspace_id, plugin_id, state, dead_at);
        ALTER TABLE events ENABLE ROW LEVEL SECURITY;
        ALTER TABLE events FORCE ROW LEVEL SECURITY;
        CREATE POLICY events_one_workspace ON events
            USING (workspace_id = current_setting('plugin_host.workspace', true))
            WITH CHECK (workspace_id = current_setting('plugin_host.workspace', true));
        ALTER TABLE event_positions ENABLE ROW LEVEL SECURITY;
        ALTER TABLE event_positions FORCE ROW LEVEL SECURITY;
        CREATE POLICY event_positions_one_workspace ON event_positions
            USING (workspace_id = current_setting('plugin_host.workspace', true))
            WITH CHECK (workspace_id = current_setting('plugin_host.workspace', true));
        ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
        ALTER TABLE dead_letters FORCE ROW LEVEL SECURITY;
        CREATE POLICY dead_letters_one_workspace ON dead_letters
            USING (workspace_id = current_setting('plugin_host.workspace', true))
            WITH CHECK (workspace_id = current_setting('plugin_host.workspace', true));
        CREATE FUNCTION plugin_host_expect(ok boolean, operation integer) RETURNS integer LANGUAGE plpgsql AS $$
        BEGIN
            IF ok THEN RETURN operation; END IF;
            RAISE EXCEPTION USING ERRCODE = 'PH409', MESSAGE = operation::text;
        END $$;
        """,
    ]

    /// Applies pending migrations under the advisory lock, then grants the serving role what it needs
    /// when migrations run as another role (the tables' owner). Idempotent; safe from several hosts at once.
    static func migrate(_ connection: PostgresConnection, servingRole: String?) throws {
        try connection.query("SELECT pg_advisory_lock($1)", [.int(migrationLock)])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [.int(migrationLock)]) }
        try connection.execute("CREATE TABLE IF NOT EXISTS plugin_host_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        let applied = Set(try connection.query("SELECT version FROM plugin_host_migrations").compactMap { $0[0].int64 })
        for (index, migration) in migrations.enumerated() where !applied.contains(Int64(index + 1)) {
            try connection.transaction {
                try connection.execute(migration)
                try connection.query("INSERT INTO plugin_host_migrations (version) VALUES ($1)", [.int(Int64(index + 1))])
            }
        }
        if let servingRole {
            // Identifiers cannot be bound as parameters; quote_ident quotes the role name server-side.
            guard let quoted = try connection.query("SELECT quote_ident($1)", [.text(servingRole)]).first?[0].string else { return }
            try connection.execute("""
                GRANT USAGE ON SCHEMA public TO \(quoted);
                GRANT SELECT, INSERT, UPDATE, DELETE ON plugins, tenants, workspaces, tokens, enablements, kv, settings, bundles, idempotency_keys, events, event_positions, dead_letters TO \(quoted);
                GRANT EXECUTE ON FUNCTION plugin_host_expect(boolean, integer) TO \(quoted);
                GRANT SELECT ON plugin_host_migrations TO \(quoted);
                """)
        }
    }
}
