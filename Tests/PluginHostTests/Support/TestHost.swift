import AsyncHTTPClient
import Foundation
import Hummingbird
import InMemoryLogging
import Logging
import NIOCore
import NIOHTTP1
import PluginHost
import ServiceLifecycle
import Testing

/// A real host on a free loopback port, driven over real HTTP.
final class TestHost: Sendable {
    let port: Int
    let adminToken: String
    let data: String
    /// Everything the host logged at info level and above (debug and above with `logLevel`).
    let logs: InMemoryLogHandler
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    struct Reply: Sendable {
        var status: Int
        var body: Data
        var headers: [String: String]

        var json: [String: any Sendable] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: any Sendable]) ?? [:] }
        var errorCode: String? { (json["error"] as? [String: any Sendable])?["code"] as? String }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Starts a host on `data`, or on PostgreSQL when `postgres` is given, with the admin token
    /// `admin-token`, and waits until it is ready.
    static func start(
        data: String, postgres: PostgresConfiguration? = nil, waitUntilReady: Bool = true, logLevel: Logger.Level = .info,
        configure: (inout HostConfiguration) -> Void = { _ in }
    ) async throws -> TestHost {
        var configuration = HostConfiguration(dataDirectory: data, port: 0, adminToken: "admin-token")
        configuration.postgres = postgres
        configure(&configuration)
        let logs = InMemoryLogHandler()
        var logger = Logger(label: "test-host") { _ in logs }
        logger.logLevel = logLevel
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await buildApplication(configuration: configuration, logger: logger, onServerRunning: { port in portContinuation.yield(port) })
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        let host = TestHost(port: port, adminToken: configuration.adminToken ?? "", data: data, logs: logs, group: group, running: running)
        if configuration.postgres != nil && waitUntilReady {
            let ready = try await eventually(timeout: .seconds(30)) { try await host.request(.GET, "/ready").status == 200 }
            if !ready {
                try? await host.stop()
                Issue.record("the host did not become ready on PostgreSQL within 30 s")
                throw CancellationError()
            }
        }
        return host
    }

    private init(port: Int, adminToken: String, data: String, logs: InMemoryLogHandler, group: ServiceGroup, running: Task<Void, any Error>) {
        self.port = port
        self.adminToken = adminToken
        self.data = data
        self.logs = logs
        self.group = group
        self.running = running
    }

    /// Shuts down gracefully, as on SIGTERM, and waits until every service has stopped.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
    }

    func request(
        _ method: HTTPMethod, _ path: String, token: String? = nil, json: Any? = nil, body: Data? = nil, contentType: String? = nil,
        headers: [String: String] = [:]
    ) async throws -> Reply {
        try await Self.request(port: port, method, path, token: token, json: json, body: body, contentType: contentType, headers: headers)
    }

    /// An HTTP request to a host listening on `port` of 127.0.0.1.
    static func request(
        port: Int, _ method: HTTPMethod, _ path: String, token: String? = nil, json: Any? = nil, body: Data? = nil, contentType: String? = nil,
        headers extra: [String: String] = [:]
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        var payload = body
        if let json { payload = try JSONSerialization.data(withJSONObject: json) }
        if let payload {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: payload))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let data = try await response.body.collect(upTo: 32 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), body: Data(buffer: data), headers: headers)
    }

    /// `request` as the platform admin.
    func admin(
        _ method: HTTPMethod, _ path: String, json: Any? = nil, body: Data? = nil, contentType: String? = nil, headers: [String: String] = [:]
    ) async throws -> Reply {
        try await Self.request(port: port, method, path, token: adminToken, json: json, body: body, contentType: contentType, headers: headers)
    }

    /// Installs a manifest over HTTP and expects 201.
    @discardableResult
    /// Installs a manifest; `isolation` (`worker`, `in-process`) overrides the manifest's, as a platform
    /// admin may at install.
    func install(_ manifest: String, contentType: String = "application/yaml", isolation: String? = nil) async throws -> Reply {
        let reply = try await admin(.POST, "/v1/plugins" + (isolation.map { "?isolation=\($0)" } ?? ""), body: Data(manifest.utf8), contentType: contentType)
        #expect(reply.status == 201, "install failed: \(reply.text)")
        return reply
    }

    /// Creates a tenant with one workspace per id, via the API, expecting success.
    func tenant(_ tenant: String, workspaces: [String]) async throws {
        #expect(try await admin(.POST, "/v1/tenants", json: ["id": tenant, "name": tenant]).status == 201)
        for workspace in workspaces {
            #expect(try await admin(.POST, "/v1/tenants/\(tenant)/workspaces", json: ["id": workspace, "name": workspace]).status == 201)
        }
    }

    /// Enables a plugin in a workspace as the platform admin, expecting 200.
    func enable(_ plugin: String, in workspace: String, grants: [String], config: [String: Any] = [:]) async throws {
        let reply = try await admin(.PUT, "/v1/workspaces/\(workspace)/plugins/\(plugin)", json: ["grants": grants, "config": config])
        #expect(reply.status == 200, "enable failed: \(reply.text)")
    }

    /// Creates a token of a tenant and returns its secret.
    func token(tenant: String, role: String, workspaces: [String] = []) async throws -> String {
        let reply = try await admin(.POST, "/v1/tenants/\(tenant)/tokens", json: ["role": role, "subject": "\(role)-of-\(tenant)", "workspaces": workspaces])
        #expect(reply.status == 201, "token failed: \(reply.text)")
        return reply.json["token"] as? String ?? ""
    }

    static let notesGrants = ["storage.read", "storage.write", "events.publish:notes.*"]
    static let auditGrants = ["storage.read", "storage.write", "events.subscribe:notes.*"]
}

/// Runs `body` with a started host on a fresh folder (and a fresh PostgreSQL database for `.postgres`),
/// and stops the host and removes the folder and database after.
func withHost<T>(
    store: StoreKind = .sqlite, logLevel: Logger.Level = .info, configure: (inout HostConfiguration) -> Void = { _ in }, _ body: (TestHost) async throws -> T
) async throws -> T {
    let folder = try TemporaryFolder()
    return try await withDatabase(store) { database in
        try await TestHost.running(data: folder.path, postgres: database?.hostConfiguration(), logLevel: logLevel, configure: configure, body)
    }
}

/// Runs `body` with a fresh PostgreSQL database for `.postgres` (`nil` for SQLite), and drops it after,
/// also when `body` throws.
func withDatabase<T>(_ store: StoreKind, _ body: (TestDatabase?) async throws -> T) async throws -> T {
    let database = store == .postgres ? try await TestDatabase.create() : nil
    do {
        let result = try await body(database)
        await database?.drop()
        return result
    } catch {
        await database?.drop()
        throw error
    }
}

extension TestHost {
    /// Starts a host (see ``start(data:postgres:waitUntilReady:configure:)``), runs `body` with it and
    /// stops it, also when `body` throws.
    @discardableResult
    static func running<T>(
        data: String, postgres: PostgresConfiguration? = nil, logLevel: Logger.Level = .info, configure: (inout HostConfiguration) -> Void = { _ in },
        _ body: (TestHost) async throws -> T
    ) async throws -> T {
        let host = try await start(data: data, postgres: postgres, logLevel: logLevel, configure: configure)
        do {
            let result = try await body(host)
            try await host.stop()
            return result
        } catch {
            try? await host.stop()
            throw error
        }
    }
}

/// Polls until `condition` holds or `timeout` passes; events are delivered asynchronously.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(25))
    }
    return try await condition()
}

/// Whether `text` appears in the SQLite store's files under `folder`: the database and its write-ahead
/// log, where recent writes sit until a checkpoint.
func storeFiles(in folder: String, contain text: String) -> Bool {
    ["/plugin-host.sqlite", "/plugin-host.sqlite-wal"].contains { file in
        ((try? Data(contentsOf: URL(fileURLWithPath: folder + file))) ?? Data()).range(of: Data(text.utf8)) != nil
    }
}
