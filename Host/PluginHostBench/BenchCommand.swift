import ArgumentParser
import Foundation
import Logging
import PluginHost

@main
enum Entry {
    static func main() async {
        // The bare peer of the worker benchmark's floor, started by the benchmark itself.
        if ProcessInfo.processInfo.environment["PLUGIN_HOST_BENCH_FRAME_ECHO"] == "1" { FramePingPong.servePeer() }
        // As `plugin-host` does: the hosts measured here run as they would there.
        NIOExecutor.installIfRequested()
        await BenchCommand.main()
    }
}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin-host-bench", abstract: "Benchmarks of plugin-host against baselines measured in the same run.")

    @Option(help: "Folder holding the release builds of the example plugins.")
    var plugins: String = "Plugins/.build/release"

    @Flag(help: "Skip the HTTP benchmark (needs wrk).")
    var skipHTTP = false

    @Flag(help: "Run only the storage benchmark.")
    var onlyStorage = false

    @Flag(help: "Run only the remote plugin benchmark.")
    var onlyRemote = false

    @Flag(help: "Run only the HTTP benchmark.")
    var onlyHTTP = false

    @Flag(help: "Run only the dispatch benchmark.")
    var onlyDispatch = false

    @Flag(help: "Run only the registry benchmark (needs PostgreSQL).")
    var onlyRegistry = false

    @Flag(help: "Run only the worker process benchmark.")
    var onlyWorkers = false

    @Flag(help: "Run only the durable events benchmarks (the notes load needs wrk).")
    var onlyEvents = false

    @Flag(help: "Run only the notes load with the audit plugin subscribed (needs wrk).")
    var onlyNotesLoad = false

    /// Durable events on SQLite and (with PLUGIN_HOST_BENCH_DATABASE_URL) PostgreSQL.
    /// `scratch` outlives this section: the echo copies it installs stay installed in the PostgreSQL
    /// database, where the notes load's host loads them again.
    private func events(_ folder: String, scratch: String) async throws {
        let benchmark = EventBenchmark(pluginsFolder: folder)
        print("\n7. durable events: a write batch (put + publish) vs a plain put, \(benchmark.callers) callers, \(benchmark.rounds) rounds of \(benchmark.duration) alternating; "
            + "then \(benchmark.events) events published by \(benchmark.callers) callers, \(benchmark.perCommit) to a write batch, and delivered to one subscriber "
            + "(the echo plugin, whose event handler does nothing; then the audit plugin, which stores each event), vs the same rows written (as many to a commit) "
            + "and read back with the store's own statements; latency at a steady rate the subscriber keeps up with, from one publisher")
        let environment = ProcessInfo.processInfo.environment
        var stores: [(String, () async throws -> any HostStore)] = []
        let temporary = scratch + "/events"
        stores.append(("SQLite", { try await SQLiteStore.open(folder: temporary + "/sqlite") }))
        if let url = environment["PLUGIN_HOST_BENCH_DATABASE_URL"] {
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            stores.append(("PostgreSQL", {
                PostgresStore(configuration: PostgresConfiguration(url: url, migrationURL: environment["PLUGIN_HOST_BENCH_MIGRATION_URL"], poolSize: 4), logger: logger)
            }))
        }
        for (name, open) in stores {
            let store = try await open()
            let result = try await benchmark.run(store: store, folder: temporary + "/" + name)
            await store.close()
            let ratio = result.puts.median / result.batches.median
            print(String(format: "   %@: put %.0f/s, batch %.0f/s: a batch costs %.2f x a put (target <= 1.5)  %@", name, result.puts.median, result.batches.median, ratio,
                         ratio <= 1.5 ? "MET" : "MISSED"))
            print(String(format: "   %@: the store's statements alone: %.0f rows/s written and read back", name, result.baselinePerSecond))
            let fan = result.fanOut
            print(String(format: "   %@, to %d subscribers (the echo plugin and copies): %d events, %.0f events/s reached all of them (%.0f deliveries/s)",
                         name, fan.subscribers, fan.events, fan.eventsPerSecond, fan.eventsPerSecond * Double(fan.subscribers)))
            for subscriber in result.subscribers {
                print(String(format: "   %@, to %@: published %.0f events/s, delivered %.0f events/s (%.2f of the baseline; target on PostgreSQL >= 10,000); "
                    + "at %d events/s, publish to delivery p50 %.1f ms, p99 %.1f ms (target on PostgreSQL p99 <= 50 ms)",
                    name, subscriber.subscriber, subscriber.publishedPerSecond, subscriber.deliveredPerSecond, subscriber.deliveredPerSecond / result.baselinePerSecond,
                    subscriber.pacedRate, subscriber.lagP50, subscriber.lagP99))
            }
        }
    }

    /// Notes created by 64 connections while the audit plugin keeps an entry per event: its delivery lag
    /// during the load, and the notes rate against the same load with no subscriber.
    private func notesLoad(_ folder: String) async throws {
        let benchmark = NotesLoadBenchmark(pluginsFolder: folder)
        print("\n8. notes under load (wrk -t1 -c\(benchmark.connections) -d\(benchmark.seconds)s, POST notes through the HTTP API) with the audit plugin "
            + "subscribed (delivery.batchSize 256), vs the same load on a workspace where nothing subscribes, in the same host; the lag is the host's "
            + "plugin_host_event_delivery_lag_seconds histogram over the load, interpolated in its buckets")
        let environment = ProcessInfo.processInfo.environment
        var runs: [(String, PostgresConfiguration?, PluginManifest.Runtime.Isolation)] = [("SQLite", nil, .inProcess)]
        if let url = environment["PLUGIN_HOST_BENCH_DATABASE_URL"] {
            let postgres = PostgresConfiguration(url: url, migrationURL: environment["PLUGIN_HOST_BENCH_MIGRATION_URL"])
            runs += [("PostgreSQL", postgres, .inProcess), ("PostgreSQL", postgres, .worker)]
        }
        for (name, postgres, isolation) in runs {
            let result = try await benchmark.run(postgres: postgres, isolation: isolation)
            let catchUp = result.catchUp.map { String(format: "%.2f s", $0.benchSeconds) } ?? "not within 120 s"
            print(String(format: "   %@, plugins %@: %.0f notes/s with the audit plugin, %.0f without (%.2f); %d notes; during the load %d delivered, "
                + "lag p50 %.3f s, p99 %.3f s (target p99 <= 1 s)  %@; every event delivered %@ after the load ended",
                name, isolation.rawValue, result.notesPerSecond, result.baselineNotesPerSecond, result.notesPerSecond / result.baselineNotesPerSecond, result.notes,
                result.deliveredDuringLoad, result.lagP50, result.lagP99, result.lagP99 <= 1 ? "MET" : "MISSED", catchUp))
        }
    }

    /// Echo through the whole host vs a bare Hummingbird route. Each round measures both, one after the
    /// other; the figure is the median of the rounds' ratios, so one round that a noisy neighbour slowed
    /// (on either side) does not decide it. The mean of all rounds is printed too.
    private func http(_ folder: String) async throws {
        let benchmark = HTTPBenchmark(pluginsFolder: folder)
        print("\n2. echo over HTTP: full host path vs a bare Hummingbird route in the same process "
            + "(wrk -t1 -c\(benchmark.connections) -d\(benchmark.duration)s, 64-byte POST, a warm-up pair, then \(benchmark.rounds) rounds of both, the order alternating)")
        let http = try await benchmark.run()
        printRounds(("host", http.hostRequestsPerSecond), against: ("bare", http.bareRequestsPerSecond), target: 0.85)
    }

    /// Each round's pair and ratio, the means, and the figure: the median of the rounds' ratios.
    private func printRounds(_ measured: (label: String, values: [Double]), against baseline: (label: String, values: [Double]), target: Double?) {
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        let ratios = zip(measured.values, baseline.values).map { $0 / $1 }
        for (round, (value, base)) in zip(measured.values, baseline.values).enumerated() {
            print(String(format: "   round %d: %@ %9.0f req/s   %@ %9.0f req/s   ratio %.3f", round + 1, measured.label, value, baseline.label, base, value / base))
        }
        print(String(format: "   mean:    %@ %9.0f req/s   %@ %9.0f req/s   ratio of the means %.3f", measured.label, mean(measured.values), baseline.label,
                     mean(baseline.values), mean(measured.values) / mean(baseline.values)))
        if let target {
            print(String(format: "   median of the rounds' ratios %.3f (target >= %.2f)  %@", ratios.median, target, ratios.median >= target ? "MET" : "MISSED"))
        } else {
            print(String(format: "   median of the rounds' ratios %.3f", ratios.median))
        }
    }

    /// The remote echo plugin directly vs through the host.
    private func remote(_ folder: String) async throws {
        let benchmark = RemoteBenchmark(pluginsFolder: folder)
        print("\n4. remote echo plugin (serve-plugin's server, in this process): called directly with signed calls vs through the host "
            + "(wrk -t1, 64-byte POST; throughput: -c\(benchmark.connections) -d\(benchmark.seconds)s, a warm-up of each, then \(benchmark.rounds) rounds of via host, direct "
            + "and via a bare proxy, the order rotating; "
            + "latency: -c1 -d\(benchmark.latencySeconds)s)")
        let executor = NIOExecutor.isRequested ? "NIO event loops (PLUGIN_HOST_NIO_EXECUTOR=1)" : "the default pool"
        print("   Swift concurrency runs on \(executor)")
        let result = try await benchmark.run()
        printRounds(("via host", result.host.map(\.requestsPerSecond)), against: ("direct", result.direct.map(\.requestsPerSecond)), target: 0.6)
        let added = result.hostLatency.p50 - result.directLatency.p50
        print(String(format: "   latency, one connection: direct p50 %6.0f us p99 %6.0f us   via host p50 %6.0f us p99 %6.0f us   added p50 %4.0f us (target <= 300 us)  %@",
                     result.directLatency.p50, result.directLatency.p99, result.hostLatency.p50, result.hostLatency.p99, added, added <= 300 ? "MET" : "MISSED"))
        print("   the floor of any proxy on this stack: the direct requests through a bare Hummingbird route that forwards them with AsyncHTTPClient "
            + "(no auth, routing, grants or signing), measured in the same rounds")
        printRounds(("via proxy", result.proxy.map(\.requestsPerSecond)), against: ("direct", result.direct.map(\.requestsPerSecond)), target: nil)
        let hostToProxy = zip(result.host, result.proxy).map { $0.requestsPerSecond / $1.requestsPerSecond }
        print(String(format: "   via host / via proxy: median of the rounds' ratios %.3f", hostToProxy.median))
        print(String(format: "   latency, one connection: via proxy p50 %6.0f us p99 %6.0f us   added p50 %4.0f us; the host adds %4.0f us to the proxy's",
                     result.proxyLatency.p50, result.proxyLatency.p99, result.proxyLatency.p50 - result.directLatency.p50, result.hostLatency.p50 - result.proxyLatency.p50))
    }

    /// KV through the SDK on PostgreSQL vs raw libpq, and on SQLite. PostgreSQL is measured when
    /// PLUGIN_HOST_BENCH_DATABASE_URL (serving role) is set, as `make bench` does with a throwaway server.
    private func storage(_ folder: String) async throws {
        let environment = ProcessInfo.processInfo.environment
        let benchmark = StorageBenchmark(
            pluginsFolder: folder, postgresURL: environment["PLUGIN_HOST_BENCH_DATABASE_URL"], migrationURL: environment["PLUGIN_HOST_BENCH_MIGRATION_URL"])
        print("\n3. KV through the SDK (context.storage, 128-byte values, 100 keys): PostgreSQL vs the same statements through raw libpq, "
            + "\(benchmark.connections) connections each (\(benchmark.callers) concurrent SDK callers share the host's pool), \(benchmark.duration) per figure, "
            + "median of \(benchmark.rounds) alternating rounds; and SQLite")
        let result = try await benchmark.run()
        if let sdk = result.sdkPostgres, let raw = result.rawPostgres {
            print(String(format: "   get: SDK on PostgreSQL %8.0f ops/s   raw libpq %8.0f ops/s   ratio %.3f (target >= 0.8)  %@",
                         sdk.getsPerSecond, raw.getsPerSecond, sdk.getsPerSecond / raw.getsPerSecond, sdk.getsPerSecond / raw.getsPerSecond >= 0.8 ? "MET" : "MISSED"))
            print(String(format: "   put: SDK on PostgreSQL %8.0f ops/s   raw libpq %8.0f ops/s   ratio %.3f (target >= 0.8)  %@",
                         sdk.putsPerSecond, raw.putsPerSecond, sdk.putsPerSecond / raw.putsPerSecond, sdk.putsPerSecond / raw.putsPerSecond >= 0.8 ? "MET" : "MISSED"))
            if let gets = result.sdkPostgresDefaultExecutorGets {
                print(String(format: "   for comparison, SDK gets from Swift's default executor instead of the pool's threads (where the host runs plugins granted storage): %.0f ops/s, ratio %.3f",
                             gets, gets / raw.getsPerSecond))
            }
        } else {
            print("   PostgreSQL skipped: PLUGIN_HOST_BENCH_DATABASE_URL is not set (make bench starts a throwaway server and sets it)")
        }
        print(String(format: "   SDK on SQLite: get %8.0f ops/s   put %8.0f ops/s", result.sdkSQLite.getsPerSecond, result.sdkSQLite.putsPerSecond))
    }

    /// Enable and workspace-create latency at about 10 and at 10,000 workspaces, two hosts sharing
    /// PostgreSQL (PLUGIN_HOST_BENCH_DATABASE_URL and _MIGRATION_URL, which `make bench` sets).
    private func registry(_ folder: String) async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["PLUGIN_HOST_BENCH_DATABASE_URL"], let owner = environment["PLUGIN_HOST_BENCH_MIGRATION_URL"] else {
            print("\n5. registry changes: skipped, PLUGIN_HOST_BENCH_DATABASE_URL and PLUGIN_HOST_BENCH_MIGRATION_URL are not set (make bench sets them)")
            return
        }
        let benchmark = RegistryBenchmark(pluginsFolder: folder, postgresURL: url, migrationURL: owner)
        print("\n5. registry changes on PostgreSQL, two hosts sharing the database: \(benchmark.operations) enables (re-configurations) and \(benchmark.operations) "
            + "workspace creations over the admin API, alternating hosts, one at a time; with about 10 workspaces, then with \(benchmark.largeSize) more")
        let (small, large) = try await benchmark.run()
        for (name, smallFigure, largeFigure) in [("enable", small.enable, large.enable), ("workspace create", small.create, large.create)] {
            let ratio = largeFigure.p50 / smallFigure.p50
            print(String(format: "   %@: p50 %6.2f ms (p99 %6.2f) at %d workspaces   p50 %6.2f ms (p99 %6.2f) at %d   ratio %.2f (target <= 1.5)  %@",
                         name, smallFigure.p50, smallFigure.p99, small.workspaces, largeFigure.p50, largeFigure.p99, large.workspaces, ratio, ratio <= 1.5 ? "MET" : "MISSED"))
        }
    }

    /// The echo handler called directly vs through the host's dispatch path.
    private func dispatch(_ folder: String) async throws {
        print("1. echo handler: direct call vs the host's dispatch path (median of 7 rounds of 200,000 calls)")
        let dispatch = try await DispatchBenchmark(pluginsFolder: folder).run()
        let overhead = dispatch.dispatchNanoseconds - dispatch.directNanoseconds
        print(String(format: "   direct   %8.1f ns/call", dispatch.directNanoseconds))
        print(String(format: "   dispatch %8.1f ns/call", dispatch.dispatchNanoseconds))
        print(String(format: "   overhead %8.1f ns/call (target <= 250 ns)  ratio dispatch/direct %.2f  %@", overhead,
                     dispatch.dispatchNanoseconds / dispatch.directNanoseconds, overhead <= 250 ? "MET" : "MISSED"))
    }

    /// Library plugins in a worker process vs in-process, against the floor of the frames' transport.
    private func workers(_ folder: String) async throws {
        let benchmark = WorkerBenchmark(pluginsFolder: folder)
        print("\n6. library plugins in a worker process vs in-process (the same .so), and the floor: the same frames ping-ponged over a socket pair "
            + "with a bare peer process (median of \(benchmark.rounds) rounds of \(benchmark.calls) sequential echo calls through the dispatch path, after a warm-up)")
        let result = try await benchmark.run()
        let added = result.worker.median - result.inProcess.median
        let floor = result.floor.median
        print(String(format: "   in-process %8.2f us/call   worker %8.2f us/call   floor (bare round trip) %8.2f us", result.inProcess.median / 1000, result.worker.median / 1000, floor / 1000))
        print(String(format: "   added round trip per call %6.2f us (target <= 15 us)  %@;  %.2f x the floor (target <= 2)  %@", added / 1000, added <= 15_000 ? "MET" : "MISSED",
                     added / floor, added <= 2 * floor ? "MET" : "MISSED"))
        print("   SDK storage get (notes GET notes/{id}, SQLite), \(benchmark.storageCallers) concurrent callers, \(benchmark.storageSeconds) s per figure, rounds alternating:")
        printRounds(("worker", result.storageWorker), against: ("in-process", result.storageInProcess), target: 0.7)
        ceiling(roundTripsPerCall: 2, pipelined: result.pipelinedStorage, inFlight: benchmark.storageCallers,
                inProcess: result.storageInProcess, worker: result.storageWorker, what: "a get (the request, and the plugin's storage call)")
        let starts = result.coldStarts
        print(String(format: "   cold start (spawn to ready, %d starts): median %.1f ms, p90 %.1f ms (target <= 50 ms)  %@", starts.count, starts.median, starts.percentile(0.9),
                     starts.median <= 50 ? "MET" : "MISSED"))
        print(String(format: "   %d idle workers: RSS %.1f MiB each (shared pages counted in each), PSS %.1f MiB each (shared pages divided), %.0f MiB PSS in all",
                     result.idleWorkers, result.idleRSS / 1048576, result.idlePSS / 1048576, result.idlePSS * Double(result.idleWorkers) / 1048576))
        print("   echo over HTTP through a host whose plugins run in workers vs one whose plugins run in-process (wrk -t1 -c\(benchmark.httpConnections) -d\(benchmark.httpSeconds)s, 64-byte POST):")
        printRounds(("worker", result.httpWorker), against: ("in-process", result.httpInProcess), target: 0.8)
        ceiling(roundTripsPerCall: 1, pipelined: result.pipelinedHTTP, inFlight: benchmark.httpConnections,
                inProcess: result.httpInProcess, worker: result.httpWorker, what: "an echo request")
    }

    /// What the transport's floor leaves of the in-process rate: even frames that cost no more than the
    /// bare pipelined ping-pong add `roundTripsPerCall` of its round trips to each call's time on this
    /// machine, so a worker can reach at most inProcessTime / (inProcessTime + those round trips).
    private func ceiling(roundTripsPerCall: Int, pipelined: [Double], inFlight: Int, inProcess: [Double], worker: [Double], what: String) {
        let roundTrip = 1e6 / pipelined.median
        let inProcessTime = 1e6 / inProcess.median
        let ceiling = inProcessTime / (inProcessTime + Double(roundTripsPerCall) * roundTrip)
        let ratio = worker.median / inProcess.median
        print(String(format: "   the floor with %d frames in flight: %.0f round trips/s (%.2f us each); %@ is %d of them, so at that floor a worker reaches at most %.3f of in-process; it reaches %.3f, %.2f of that ceiling",
                     inFlight, pipelined.median, roundTrip, what, roundTripsPerCall, ceiling, ratio, ratio / ceiling))
    }

    func run() async throws {
        let folder = URL(fileURLWithPath: plugins).standardizedFileURL.path
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        if onlyWorkers { return try await workers(folder) }
        if onlyEvents {
            try await events(folder, scratch: scratch)
            return try await notesLoad(folder)
        }
        if onlyNotesLoad { return try await notesLoad(folder) }
        if onlyRegistry { return try await registry(folder) }
        if onlyStorage { return try await storage(folder) }
        if onlyRemote { return try await remote(folder) }
        if onlyHTTP { return try await http(folder) }
        try await dispatch(folder)
        if onlyDispatch { return }
        try await storage(folder)
        try await registry(folder)
        try await events(folder, scratch: scratch)
        guard !skipHTTP else { return }
        try await notesLoad(folder)
        try await http(folder)
        try await remote(folder)
        try await workers(folder)
    }
}
