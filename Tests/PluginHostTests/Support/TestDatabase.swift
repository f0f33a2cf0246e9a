import Foundation
import NIOPosix
@testable import PluginHost
import Testing

/// The stores the storage, registry and isolation tests run against: each such test is parameterized
/// over both, so PostgreSQL runs the very same scenarios as the embedded store.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// The PostgreSQL server the tests use: `PLUGIN_HOST_TEST_DATABASE_URL`, a URL of a role that may create
/// roles and databases. `make test` starts a throwaway server (Tests/support/throwaway-postgres.sh) and
/// sets it; a developer may point it at a server of their own.
enum TestPostgres {
    static var serverURL: String? {
        ProcessInfo.processInfo.environment["PLUGIN_HOST_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static func requireServerURL() throws -> String {
        guard let url = serverURL else {
            Issue.record("PLUGIN_HOST_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL, or point it at a server")
            throw Fixtures.FixtureMissing()
        }
        return url
    }

    /// Runs blocking libpq work on a thread of its own, never on the cooperative pool the hosts use.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    /// `url` with another user, password and database.
    static func url(_ base: String, user: String, password: String?, database: String) -> String {
        var components = URLComponents(string: base)!
        components.user = user
        components.password = password
        components.path = "/" + database
        return components.string!
    }
}

/// A database of its own for one test, with an owner role that runs migrations and a serving role the
/// host connects as (subject to row-level security); dropped with its roles by ``drop()``.
final class TestDatabase: Sendable {
    let serverURL: String
    let name: String
    let ownerRole: String
    let appRole: String
    let password: String

    var servingURL: String { TestPostgres.url(serverURL, user: appRole, password: password, database: name) }
    var ownerURL: String { TestPostgres.url(serverURL, user: ownerRole, password: password, database: name) }
    var superuserURL: String {
        var components = URLComponents(string: serverURL)!
        components.path = "/" + name
        return components.string!
    }

    func hostConfiguration(poolSize: Int = 4) -> PostgresConfiguration {
        PostgresConfiguration(url: servingURL, migrationURL: ownerURL, poolSize: poolSize, resyncInterval: .seconds(2))
    }

    static func create(serverURL: String? = nil) async throws -> TestDatabase {
        let server = try serverURL ?? TestPostgres.requireServerURL()
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let database = TestDatabase(serverURL: server, suffix: String(suffix))
        try await TestPostgres.blocking {
            let connection = try PostgresConnection(url: server, statementTimeout: .seconds(30))
            // Names and the password are generated hex, so spelling them into DDL is safe.
            try connection.execute("CREATE ROLE \(database.ownerRole) LOGIN PASSWORD '\(database.password)'")
            try connection.execute("CREATE ROLE \(database.appRole) LOGIN PASSWORD '\(database.password)'")
            try connection.execute("CREATE DATABASE \(database.name) OWNER \(database.ownerRole)")
        }
        return database
    }

    private init(serverURL: String, suffix: String) {
        self.serverURL = serverURL
        self.name = "ph_test_\(suffix)"
        self.ownerRole = "ph_owner_\(suffix)"
        self.appRole = "ph_app_\(suffix)"
        self.password = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    func drop() async {
        let (server, name, owner, app) = (serverURL, self.name, ownerRole, appRole)
        _ = try? await TestPostgres.blocking {
            let connection = try PostgresConnection(url: server, statementTimeout: .seconds(30))
            try connection.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            try connection.execute("DROP ROLE IF EXISTS \(app)")
            try connection.execute("DROP ROLE IF EXISTS \(owner)")
        }
    }

    /// Runs SQL as `url`'s role on this database and returns the rows.
    func query(as url: String, _ statements: [PostgresStatement]) async throws -> [[PostgresRow]] {
        try await TestPostgres.blocking {
            let connection = try PostgresConnection(url: url, statementTimeout: .seconds(30))
            return try connection.pipeline(statements)
        }
    }
}

/// Runs `body` with an open store of `kind` on a fresh folder or database, and removes both after.
func withStore<T>(_ kind: StoreKind, _ body: (any HostStore) async throws -> T) async throws -> T {
    switch kind {
    case .sqlite:
        let folder = try TemporaryFolder()
        let store = try await SQLiteStore.open(folder: folder.path)
        defer { _ = folder }
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    case .postgres:
        let database = try await TestDatabase.create()
        let store = PostgresStore(configuration: database.hostConfiguration(), logger: .init(label: "test-store"))
        do {
            try await store.prepare()
            let result = try await body(store)
            await store.close()
            await database.drop()
            return result
        } catch {
            await store.close()
            await database.drop()
            throw error
        }
    }
}
