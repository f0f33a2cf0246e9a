import Foundation

/// One wrk run: requests/s, and the latency percentiles of `--latency`.
struct WrkResult {
    var requestsPerSecond: Double
    /// Requests answered in the run.
    var requests: Int
    /// Latency percentiles in microseconds.
    var p50: Double
    var p99: Double
}

/// Runs Debian's wrk, waiting for it on a thread of its own: the servers under test run on the
/// event loops (and the concurrency pool), which a blocking wait would take one thread from. A run with
/// any non-2xx answer is refused: its figures would measure errors.
func runWrk(_ url: String, connections: Int, seconds: Int, script: String, arguments: [String] = [], scriptArguments: [String] = []) async throws -> WrkResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result {
                try wrk(url, connections: connections, seconds: seconds, script: script, arguments: arguments, scriptArguments: scriptArguments)
            })
        }.start()
    }
}

private func wrk(_ url: String, connections: Int, seconds: Int, script: String, arguments: [String], scriptArguments: [String]) throws -> WrkResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
    process.arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "--latency", "-s", script] + arguments + [url] + (scriptArguments.isEmpty ? [] : ["--"] + scriptArguments)
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    func percentile(_ label: String) -> Double? {
        guard let line = lines.first(where: { $0.hasPrefix(label) }) else { return nil }
        return microseconds(String(line.dropFirst(label.count)).trimmingCharacters(in: .whitespaces))
    }
    guard !output.contains("Non-2xx"), let line = lines.first(where: { $0.hasPrefix("Requests/sec:") }),
          let rate = Double(line.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces)),
          let p50 = percentile("50%"), let p99 = percentile("99%"),
          let total = lines.first(where: { $0.contains(" requests in ") }).flatMap({ Int($0.prefix { $0 != " " }) })
    else { throw BenchError("wrk failed against \(url):\n\(output)") }
    return WrkResult(requestsPerSecond: rate, requests: total, p50: p50, p99: p99)
}

/// wrk's `123.45us`, `1.23ms` or `1.02s`, in microseconds.
private func microseconds(_ text: String) -> Double? {
    for (suffix, factor) in [("us", 1.0), ("ms", 1000.0), ("s", 1_000_000.0)] where text.hasSuffix(suffix) {
        return Double(text.dropLast(suffix.count)).map { $0 * factor }
    }
    return nil
}

extension Array where Element == Double {
    /// The middle value (the upper one of an even count): the figure of a benchmark's rounds.
    var median: Double { sorted()[count / 2] }
}

/// Measures both sides once per round, the order alternating between rounds, so that a drift in the
/// machine's speed does not always land on the same side. With `warmUp`, a first pair is run and not counted.
func alternatingRounds<A, B>(
    _ rounds: Int, warmUp: Bool, _ first: () async throws -> A, _ second: () async throws -> B
) async throws -> (first: [A], second: [B]) {
    if warmUp {
        _ = try await first()
        _ = try await second()
    }
    var (firsts, seconds): ([A], [B]) = ([], [])
    for round in 0..<rounds {
        if round % 2 == 0 {
            firsts.append(try await first())
            seconds.append(try await second())
        } else {
            seconds.append(try await second())
            firsts.append(try await first())
        }
    }
    return (firsts, seconds)
}

/// Measures every side once per round, the order rotating between rounds (the first side of one round
/// goes last in the next). With `warmUp`, each side is run once first and not counted.
func rotatingRounds<T>(_ rounds: Int, warmUp: Bool, _ sides: [() async throws -> T]) async throws -> [[T]] {
    if warmUp {
        for side in sides { _ = try await side() }
    }
    var results = [[T]](repeating: [], count: sides.count)
    for round in 0..<rounds {
        for step in 0..<sides.count {
            let side = (round + step) % sides.count
            results[side].append(try await sides[side]())
        }
    }
    return results
}
