import CLibPQ
import Foundation
import Logging
import PluginHost
import ServiceLifecycle

/// What one registry change costs as the registry grows: two hosts share one PostgreSQL database, and
/// enables and workspace creations alternate between them over the admin API, first with about 10
/// workspaces, then with 10,000 more. Each host applies the other's changes as they are notified. The
/// figure for each operation is the ratio of its p50 latency at 10,000 workspaces to that at 10.
struct RegistryBenchmark {
    let pluginsFolder: String
    /// The serving role's URL and the owner's (which may write the tables), of a database the benchmark may fill.
    let postgresURL: String
    let migrationURL: String
    let operations = 200
    let largeSize = 10_000

    struct Figures {
        /// Milliseconds, p50 and p99 of `operations` calls each.
        var enable: (p50: Double, p99: Double)
        var create: (p50: Double, p99: Double)
        /// Workspaces in the database when the measurement began.
        var workspaces: Int
    }

    func run() async throws -> (small: Figures, large: Figures) {
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        let tenant = "registry-\(run)"
        let small = try await withHosts { hosts in
            _ = try await call(hosts[0], "POST", "/v1/plugins", body: echoManifest(pluginsFolder), ok: [201, 400])
            _ = try await call(hosts[0], "POST", "/v1/tenants", body: #"{"id":"\#(tenant)","name":"registry"}"#, ok: [201])
            for index in 0..<10 {
                _ = try await call(hosts[index % 2], "POST", "/v1/tenants/\(tenant)/workspaces", body: #"{"id":"\#(tenant)-\#(index)","name":"w"}"#, ok: [201])
            }
            return try await measure(hosts, tenant: tenant, label: "small", workspaces: 10)
        }
        try seed(tenant: tenant, count: largeSize)
        let large = try await withHosts { hosts in try await measure(hosts, tenant: tenant, label: "large", workspaces: 10 + operations + largeSize) }
        return (small, large)
    }

    /// Enables (re-configures) the echo plugin in the tenant's first 10 workspaces and creates new
    /// workspaces, alternating hosts, one call at a time.
    private func measure(_ hosts: [Int], tenant: String, label: String, workspaces: Int) async throws -> Figures {
        var enables: [Double] = []
        var creates: [Double] = []
        for index in 0..<operations {
            let host = hosts[index % 2]
            enables.append(try await timed {
                _ = try await call(host, "PUT", "/v1/workspaces/\(tenant)-\(index % 10)/plugins/example.echo", body: #"{"grants":[],"config":{}}"#, ok: [200])
            })
            creates.append(try await timed {
                _ = try await call(host, "POST", "/v1/tenants/\(tenant)/workspaces", body: #"{"id":"\#(tenant)-\#(label)-\#(index)","name":"w"}"#, ok: [201])
            })
        }
        return Figures(enable: (enables.median, enables.percentile(0.99)), create: (creates.median, creates.percentile(0.99)), workspaces: workspaces)
    }

    /// Two hosts on the database, running while `body` runs.
    private func withHosts<T>(_ body: ([Int]) async throws -> T) async throws -> T {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let ports = AsyncStream.makeStream(of: Int.self)
        var applications: [any Service] = []
        var folders: [String] = []
        for _ in 0..<2 {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)").path
            folders.append(folder)
            var configuration = inProcess(HostConfiguration(dataDirectory: folder, port: 0, adminToken: Self.token))
            configuration.postgres = PostgresConfiguration(url: postgresURL, migrationURL: migrationURL, poolSize: 4)
            // Both hosts sign SDK tokens and seal secrets with one key, as hosts sharing a database must.
            configuration.remote.secretKey = Data(repeating: 7, count: 32).base64EncodedString()
            applications.append(try await buildApplication(configuration: configuration, logger: logger, onServerRunning: { ports.continuation.yield($0) }))
        }
        defer { for folder in folders { try? FileManager.default.removeItem(atPath: folder) } }
        let group = ServiceGroup(configuration: .init(services: applications, gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        var iterator = ports.stream.makeAsyncIterator()
        var bound: [Int] = []
        while bound.count < 2, let port = await iterator.next() { bound.append(port) }
        for port in bound {
            let deadline = ContinuousClock.now + .seconds(60)
            while (try? await httpCall("GET", "http://127.0.0.1:\(port)/ready", token: nil, body: nil).status) != 200 {
                guard ContinuousClock.now < deadline else { throw BenchError("a host on PostgreSQL did not become ready") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        do {
            let result = try await body(bound)
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            return result
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
    }

    /// `count` workspaces of `tenant`, written straight into the tables as the owner.
    private func seed(tenant: String, count: Int) throws {
        guard let connection = PQconnectdb(migrationURL) else { throw BenchError("cannot connect to seed workspaces") }
        defer { PQfinish(connection) }
        guard PQstatus(connection) == CONNECTION_OK else { throw BenchError("cannot connect to seed workspaces: \(String(cString: PQerrorMessage(connection)))") }
        let sql = """
            BEGIN;
            SELECT set_config('plugin_host.registry', 'on', true);
            INSERT INTO workspaces (id, tenant_id, name, created_at)
                SELECT '\(tenant)-seed-' || i, '\(tenant)', 'seeded', extract(epoch FROM now()) FROM generate_series(1, \(count)) AS i;
            COMMIT;
            """
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else { throw BenchError("seeding workspaces failed: \(String(cString: PQerrorMessage(connection)))") }
    }

    @discardableResult
    private func call(_ port: Int, _ method: String, _ path: String, body: String?, ok: Set<Int>) async throws -> Data {
        let answer = try await httpCall(method, "http://127.0.0.1:\(port)\(path)", token: Self.token, body: body)
        guard ok.contains(answer.status) else { throw BenchError("\(method) \(path) answered \(answer.status): \(String(decoding: answer.body, as: UTF8.self))") }
        return answer.body
    }

    private func timed(_ body: () async throws -> Void) async throws -> Double {
        let started = ContinuousClock.now
        try await body()
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
    }

    private static let token = "bench-registry-token"
}

extension Array where Element == Double {
    /// The value below which `fraction` of the values lie.
    func percentile(_ fraction: Double) -> Double {
        let sorted = sorted()
        return sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}
