import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

@main
enum Entry {
    static func main() async {
        // As `plugin-host` does (see its entry point): the hosts measured here run as they would there.
        if ProcessInfo.processInfo.environment["PLUGIN_HOST_NIO_EXECUTOR"] == "1" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
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

    /// Echo through the whole host vs a bare Hummingbird route. Each round measures both, one after the
    /// other; the figure is the median of the rounds' ratios, so one round that a noisy neighbour slowed
    /// (on either side) does not decide it. The mean of all rounds is printed too.
    private func http(_ folder: String) async throws {
        let benchmark = HTTPBenchmark(pluginsFolder: folder)
        print("\n2. echo over HTTP: full host path vs a bare Hummingbird route in the same process "
            + "(wrk -t1 -c\(benchmark.connections) -d\(benchmark.duration)s, 64-byte POST, a warm-up pair, then \(benchmark.rounds) rounds of both, the order alternating)")
        let http = try await benchmark.run()
        var ratios: [Double] = []
        for (round, (host, bare)) in zip(http.hostRequestsPerSecond, http.bareRequestsPerSecond).enumerated() {
            ratios.append(host / bare)
            print(String(format: "   round %d: host %9.0f req/s   bare %9.0f req/s   ratio %.3f", round + 1, host, bare, host / bare))
        }
        let host = http.hostRequestsPerSecond.reduce(0, +) / Double(http.hostRequestsPerSecond.count)
        let bare = http.bareRequestsPerSecond.reduce(0, +) / Double(http.bareRequestsPerSecond.count)
        let median = ratios.sorted()[ratios.count / 2]
        print(String(format: "   mean:    host %9.0f req/s   bare %9.0f req/s   ratio of the means %.3f", host, bare, host / bare))
        print(String(format: "   median of the rounds' ratios %.3f (target >= 0.85)  %@", median, median >= 0.85 ? "MET" : "MISSED"))
    }

    /// The remote echo plugin directly vs through the host.
    private func remote(_ folder: String) async throws {
        let benchmark = RemoteBenchmark(pluginsFolder: folder)
        print("\n4. remote echo plugin (serve-plugin's server, in this process): called directly with signed calls vs through the host "
            + "(wrk -t1, 64-byte POST; throughput: -c\(benchmark.connections) -d\(benchmark.seconds)s, \(benchmark.rounds) alternating rounds; "
            + "latency: -c1 -d\(benchmark.latencySeconds)s)")
        let executor = ProcessInfo.processInfo.environment["PLUGIN_HOST_NIO_EXECUTOR"] == "1" ? "NIO event loops (PLUGIN_HOST_NIO_EXECUTOR=1)" : "the default pool"
        print("   Swift concurrency runs on \(executor)")
        let result = try await benchmark.run()
        for (round, (host, direct)) in zip(result.host, result.direct).enumerated() {
            print(String(format: "   round %d: via host %9.0f req/s   direct %9.0f req/s   ratio %.3f", round + 1, host.requestsPerSecond, direct.requestsPerSecond,
                         host.requestsPerSecond / direct.requestsPerSecond))
        }
        let host = result.host.map(\.requestsPerSecond).reduce(0, +) / Double(result.host.count)
        let direct = result.direct.map(\.requestsPerSecond).reduce(0, +) / Double(result.direct.count)
        print(String(format: "   mean:    via host %9.0f req/s   direct %9.0f req/s   ratio %.3f (target >= 0.6)  %@", host, direct, host / direct,
                     host / direct >= 0.6 ? "MET" : "MISSED"))
        let added = result.hostLatency.p50 - result.directLatency.p50
        print(String(format: "   latency, one connection: direct p50 %6.0f us p99 %6.0f us   via host p50 %6.0f us p99 %6.0f us   added p50 %4.0f us (target <= 300 us)  %@",
                     result.directLatency.p50, result.directLatency.p99, result.hostLatency.p50, result.hostLatency.p99, added, added <= 300 ? "MET" : "MISSED"))
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
        } else {
            print("   PostgreSQL skipped: PLUGIN_HOST_BENCH_DATABASE_URL is not set (make bench starts a throwaway server and sets it)")
        }
        print(String(format: "   SDK on SQLite: get %8.0f ops/s   put %8.0f ops/s", result.sdkSQLite.getsPerSecond, result.sdkSQLite.putsPerSecond))
    }

    func run() async throws {
        let folder = URL(fileURLWithPath: plugins).standardizedFileURL.path
        if onlyStorage { return try await storage(folder) }
        if onlyRemote { return try await remote(folder) }
        if onlyHTTP { return try await http(folder) }
        print("1. echo handler: direct call vs the host's dispatch path (median of 7 rounds of 200,000 calls)")
        let dispatch = try await DispatchBenchmark(pluginsFolder: folder).run()
        let overhead = dispatch.dispatchNanoseconds - dispatch.directNanoseconds
        print(String(format: "   direct   %8.1f ns/call", dispatch.directNanoseconds))
        print(String(format: "   dispatch %8.1f ns/call", dispatch.dispatchNanoseconds))
        print(String(format: "   overhead %8.1f ns/call (target <= 250 ns)  ratio dispatch/direct %.2f  %@", overhead,
                     dispatch.dispatchNanoseconds / dispatch.directNanoseconds, overhead <= 250 ? "MET" : "MISSED"))
        try await storage(folder)
        guard !skipHTTP else { return }
        try await http(folder)
        try await remote(folder)
    }
}
