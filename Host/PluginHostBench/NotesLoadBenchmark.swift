import Foundation
import Logging
import PluginHost
import ServiceLifecycle

/// Notes created through the HTTP API by 64 connections (wrk) while the audit plugin, subscribed in the
/// same workspace, stores an entry per `notes.created`: does the subscriber keep pace? The lag is the
/// host's own `plugin_host_event_delivery_lag_seconds` histogram, read from `/metrics` as an operator
/// would (its buckets, interpolated like PromQL's `histogram_quantile`). The baseline is the same load on
/// a workspace where nothing subscribes, in the same host.
struct NotesLoadBenchmark {
    let pluginsFolder: String
    let connections = 64
    let seconds = 10

    struct Result {
        var baselineNotesPerSecond: Double
        var notesPerSecond: Double
        var notes: Int
        /// Deliveries to the audit plugin while the load ran, and their lag percentiles in seconds.
        var deliveredDuringLoad: Int
        var lagP50: Double
        var lagP99: Double
        /// From the end of the load until the audit plugin had every note's event.
        var catchUp: Duration?
    }

    func run(postgres: PostgresConfiguration?, isolation: PluginManifest.Runtime.Isolation) async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-notes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try notesManifest(pluginsFolder).write(to: folder.appendingPathComponent("manifests/notes.json"), atomically: true, encoding: .utf8)
        try auditManifest(pluginsFolder).write(to: folder.appendingPathComponent("manifests/audit.json"), atomically: true, encoding: .utf8)

        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let token = "bench-admin-token"
        var configuration = HostConfiguration(
            dataDirectory: folder.appendingPathComponent("data").path, port: 0, manifestsDirectory: folder.appendingPathComponent("manifests").path, adminToken: token)
        configuration.workers.defaultIsolation = isolation
        configuration.postgres = postgres
        let ports = AsyncStream.makeStream(of: Int.self)
        let host = try await buildApplication(configuration: configuration, logger: logger, onServerRunning: { ports.continuation.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [host], gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        var iterator = ports.stream.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchError("the host did not start") }
        let base = "http://127.0.0.1:\(port)"
        // On PostgreSQL the store connects after the server is up: wait until the host is ready.
        let ready = ContinuousClock.now + .seconds(30)
        while try await httpCall("GET", base + "/ready", token: nil, body: nil).status != 200 {
            guard ContinuousClock.now < ready else { throw BenchError("the host was not ready within 30 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Several runs share one PostgreSQL database: names of their own.
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let (tenant, quiet, audited) = ("load-\(suffix)", "quiet-\(suffix)", "audited-\(suffix)")
        try expect(200...201, await httpCall("POST", base + "/v1/tenants", token: token, body: #"{"id":"\#(tenant)","name":"load"}"#), "create the tenant")
        for workspace in [quiet, audited] {
            try expect(200...201, await httpCall("POST", base + "/v1/tenants/\(tenant)/workspaces", token: token, body: #"{"id":"\#(workspace)","name":"load"}"#), "create \(workspace)")
            try expect(200...200, await httpCall("PUT", base + "/v1/workspaces/\(workspace)/plugins/example.notes", token: token,
                                                 body: #"{"grants":["storage.read","storage.write","events.publish:notes.*"]}"#), "enable notes")
        }
        try expect(200...200, await httpCall("PUT", base + "/v1/workspaces/\(audited)/plugins/example.audit", token: token,
                                             body: #"{"grants":["storage.read","storage.write","events.subscribe:notes.*"]}"#), "enable audit")

        let script = folder.appendingPathComponent("notes.lua").path
        try "wrk.method = \"POST\"\nwrk.body = '{\"text\":\"a note written under load\"}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        let authorization = ["-H", "Authorization: Bearer \(token)"]
        func load(_ workspace: String) async throws -> WrkResult {
            try await runWrk(base + "/v1/workspaces/\(workspace)/plugins/example.notes/resources/notes", connections: connections, seconds: seconds,
                             script: script, arguments: authorization)
        }
        let baseline = try await load(quiet)
        let measured = try await load(audited)
        let loadEnded = ContinuousClock.now
        let during = try await lagHistogram(base, token: token, workspace: audited)

        // Every note's event reaches the audit plugin: how long after the load ended.
        var catchUp: Duration?
        let deadline = loadEnded + .seconds(120)
        while ContinuousClock.now < deadline {
            if try await delivered(base, token: token, workspace: audited) >= measured.requests {
                catchUp = ContinuousClock.now - loadEnded
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return Result(
            baselineNotesPerSecond: baseline.requestsPerSecond, notesPerSecond: measured.requestsPerSecond, notes: measured.requests,
            deliveredDuringLoad: Int(during.last?.count ?? 0), lagP50: quantile(0.5, during), lagP99: quantile(0.99, during), catchUp: catchUp)
    }

    private func expect(_ statuses: ClosedRange<Int>, _ answer: (status: Int, body: Data), _ what: String) throws {
        let (status, body) = answer
        guard statuses.contains(status) else { throw BenchError("could not \(what): \(status) \(String(decoding: body, as: UTF8.self))") }
    }

    /// The audit plugin's cumulative lag buckets in `workspace`: (upper bound in seconds, count), +Inf last.
    private func lagHistogram(_ base: String, token: String, workspace: String) async throws -> [(bound: Double, count: Double)] {
        try await metricLines(base, token: token, prefix: "plugin_host_event_delivery_lag_seconds_bucket{", workspace: workspace).compactMap { line in
            guard let le = line.range(of: "le=\""), let close = line[le.upperBound...].firstIndex(of: "\""),
                  let count = Double(line.split(separator: " ").last ?? "") else { return nil }
            let bound = String(line[le.upperBound..<close])
            return (bound == "+Inf" ? .infinity : Double(bound) ?? .nan, count)
        }.sorted { $0.bound < $1.bound }
    }

    private func delivered(_ base: String, token: String, workspace: String) async throws -> Int {
        let lines = try await metricLines(base, token: token, prefix: "plugin_host_event_deliveries_total{", workspace: workspace)
        return lines.compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    private func metricLines(_ base: String, token: String, prefix: String, workspace: String) async throws -> [Substring] {
        let (status, body) = try await httpCall("GET", base + "/metrics", token: token, body: nil)
        guard status == 200 else { throw BenchError("GET /metrics answered \(status)") }
        return String(decoding: body, as: UTF8.self).split(separator: "\n").filter {
            $0.hasPrefix(prefix) && $0.contains("workspace=\"\(workspace)\"") && $0.contains("plugin=\"example.audit\"")
        }
    }

    /// As PromQL's `histogram_quantile`: linear within the bucket the quantile falls in.
    private func quantile(_ q: Double, _ buckets: [(bound: Double, count: Double)]) -> Double {
        guard let total = buckets.last?.count, total > 0 else { return .nan }
        let rank = q * total
        var (lower, below) = (0.0, 0.0)
        for (bound, count) in buckets {
            if count >= rank {
                guard bound.isFinite else { return lower }  // past the last finite bucket: its bound, at least
                return lower + (bound - lower) * (count > below ? (rank - below) / (count - below) : 0)
            }
            (lower, below) = (bound, count)
        }
        return .nan
    }
}
