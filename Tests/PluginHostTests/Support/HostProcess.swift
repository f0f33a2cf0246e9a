import Foundation
import NIOHTTP1
import PluginHost
import Synchronization
import Testing

/// A child process that prints the port it listens on, with its stderr in a log file: `plugin-host
/// serve`, `plugin-host serve-plugin` and the Python plugin.
final class ChildProcess: Sendable {
    let port: Int
    private let process: Process

    /// Starts `executable` and waits until its stdout has a line matching `pattern`, whose last
    /// `:`-separated part is the port.
    static func start(
        _ executable: String, _ arguments: [String], log: String, pattern: String
    ) async throws -> ChildProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for name in ["PLUGIN_HOST_DATABASE_URL", "PLUGIN_HOST_DATABASE_MIGRATION_URL", "PLUGIN_HOST_ADMIN_TOKEN", "PLUGIN_HOST_INSTALL_SECRET"] {
            merged[name] = nil
        }
        process.environment = merged
        let output = Pipe()
        process.standardOutput = output
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let printed = Mutex(Data())
        output.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            // At end of file the handler is called again and again with nothing: stop it.
            if chunk.isEmpty { handle.readabilityHandler = nil }
            printed.withLock { $0.append(chunk) }
        }
        try process.run()

        let deadline = ContinuousClock.now + .seconds(30)
        var port: Int?
        while port == nil, ContinuousClock.now < deadline, process.isRunning {
            let text = String(decoding: printed.withLock { $0 }, as: UTF8.self)
            if let range = text.range(of: pattern, options: .regularExpression) {
                port = Int(text[range].split(separator: ":").last ?? "")
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let child = ChildProcess(port: port ?? 0, process: process)
        guard port != nil else {
            await child.kill()
            Issue.record("\(executable) \(arguments.first ?? "") did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            throw CancellationError()
        }
        return child
    }

    private init(port: Int, process: Process) {
        self.port = port
        self.process = process
    }

    /// SIGKILL: no drain, no shutdown hooks, nothing flushed.
    func kill() async {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        await waitForExit(within: .seconds(30))
    }

    /// SIGTERM, then waits for the graceful shutdown to finish; SIGKILL after 10 s.
    func terminate() async {
        if process.isRunning { process.terminate() }
        if !(await waitForExit(within: .seconds(10))) { await kill() }
    }

    /// Polls: `waitUntilExit` would hold a thread, and spins on Linux.
    @discardableResult
    private func waitForExit(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return !process.isRunning
    }
}

/// A `plugin-host serve` child process (the debug CLI that `make test` builds), for tests that need
/// several hosts or a host killed with SIGKILL.
final class HostProcess: Sendable {
    let adminToken = "admin-token"
    private let child: ChildProcess

    var port: Int { child.port }

    static var executable: String { Fixtures.root.appendingPathComponent(".build/debug/plugin-host").path }

    /// Starts `plugin-host serve` on a free port with the given store and waits until it is ready.
    static func start(data: String, postgres database: TestDatabase? = nil, log: String, arguments extra: [String] = []) async throws -> HostProcess {
        try #require(FileManager.default.isExecutableFile(atPath: executable), "build the CLI first (make test does)")
        var arguments = ["serve", "--port", "0", "--data", data, "--admin-token", "admin-token", "--log-level", "warning"]
        if let database {
            arguments += ["--postgres", database.servingURL, "--postgres-migration-url", database.ownerURL, "--postgres-pool-size", "4"]
        }
        arguments += extra
        let child = try await ChildProcess.start(executable, arguments, log: log, pattern: #"listening on http://127\.0\.0\.1:(\d+)"#)
        let host = HostProcess(child: child)
        let ready = try await eventually(timeout: .seconds(30)) { (try? await host.request(.GET, "/ready").status) == 200 }
        if !ready {
            await host.kill()
            Issue.record("plugin-host serve did not become ready: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            throw CancellationError()
        }
        return host
    }

    private init(child: ChildProcess) {
        self.child = child
    }

    func request(_ method: HTTPMethod, _ path: String, token: String? = nil, json: Any? = nil, body: Data? = nil, contentType: String? = nil) async throws -> TestHost.Reply {
        try await TestHost.request(port: port, method, path, token: token, json: json, body: body, contentType: contentType)
    }

    func admin(_ method: HTTPMethod, _ path: String, json: Any? = nil, body: Data? = nil, contentType: String? = nil) async throws -> TestHost.Reply {
        try await request(method, path, token: adminToken, json: json, body: body, contentType: contentType)
    }

    func kill() async { await child.kill() }
    func terminate() async { await child.terminate() }
}

/// Runs a command to completion and returns its status and output (stdout and stderr together). It
/// waits on a thread of its own: waiting for a child process must not hold one of the few threads of
/// Swift's cooperative pool that the hosts under test run on (nor a Dispatch worker, which that pool
/// is made of on Linux).
func runCommand(_ executable: String, _ arguments: [String], in directory: String? = nil) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                try process.run()
                let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (process.terminationStatus, output)
            })
        }.start()
    }
}
