import ArgumentParser
import Foundation

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin-host-bench", abstract: "Benchmarks of plugin-host against baselines measured in the same run.")

    @Option(help: "Folder holding the release builds of the example plugins.")
    var plugins: String = "Plugins/.build/release"

    @Flag(help: "Skip the HTTP benchmark (needs wrk).")
    var skipHTTP = false

    func run() async throws {
        let folder = URL(fileURLWithPath: plugins).standardizedFileURL.path
        print("1. echo handler: direct call vs the host's dispatch path (median of 7 rounds of 200,000 calls)")
        let dispatch = try await DispatchBenchmark(pluginsFolder: folder).run()
        let overhead = dispatch.dispatchNanoseconds - dispatch.directNanoseconds
        print(String(format: "   direct   %8.1f ns/call", dispatch.directNanoseconds))
        print(String(format: "   dispatch %8.1f ns/call", dispatch.dispatchNanoseconds))
        print(String(format: "   overhead %8.1f ns/call (target <= 250 ns)  ratio dispatch/direct %.2f  %@", overhead,
                     dispatch.dispatchNanoseconds / dispatch.directNanoseconds, overhead <= 250 ? "MET" : "MISSED"))
        guard !skipHTTP else { return }
        print("\n2. echo over HTTP: full host path vs a bare Hummingbird route in the same process (wrk -t1 -c32 -d8s, 64-byte POST, 3 alternating rounds)")
        let http = try await HTTPBenchmark(pluginsFolder: folder).run()
        for (round, (host, bare)) in zip(http.hostRequestsPerSecond, http.bareRequestsPerSecond).enumerated() {
            print(String(format: "   round %d: host %9.0f req/s   bare %9.0f req/s   ratio %.3f", round + 1, host, bare, host / bare))
        }
        let host = http.hostRequestsPerSecond.reduce(0, +) / Double(http.hostRequestsPerSecond.count)
        let bare = http.bareRequestsPerSecond.reduce(0, +) / Double(http.bareRequestsPerSecond.count)
        print(String(format: "   mean:    host %9.0f req/s   bare %9.0f req/s   ratio %.3f (target >= 0.85)  %@", host, bare, host / bare, host / bare >= 0.85 ? "MET" : "MISSED"))
    }
}
