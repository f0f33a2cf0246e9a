import Foundation
import Subprocess
import SystemPackage
import NIOHTTP1
import PluginHost
import Synchronization
import Testing

/// A child process that prints the port it listens on, with its stderr in a log file: `plugin-host
/// serve`, `plugin-host serve-plugin` and the Python plugin. Spawned through swift-subprocess:
/// Foundation's `Process.run()` on Linux over-reads `/proc/self/fd` entries and crashes now and then
/// (swift-corelibs-foundation#5472), which took a whole test run down once.
final class ChildProcess: Sendable {
    let port: Int
    private let pid: pid_t
    /// Ends when the process has exited and its output is read.
    private let running: Task<Void, Never>
    private let exited: Flag

    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// Starts `executable` and waits until its stdout has a line matching `pattern`, whose last
    /// `:`-separated part is the port.
    static func start(
        _ executable: String, _ arguments: [String], log: String, pattern: String
    ) async throws -> ChildProcess {
        var environment = Environment.inherit
        for name in ["PLUGIN_HOST_DATABASE_URL", "PLUGIN_HOST_DATABASE_MIGRATION_URL", "PLUGIN_HOST_ADMIN_TOKEN", "PLUGIN_HOST_INSTALL_SECRET"] {
            environment = environment.updating([Environment.Key(stringLiteral: name): nil])
        }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let logFile = try FileDescriptor.open(FilePath(log), .writeOnly)
        let printed = Mutex(Data())
        let exited = Flag()
        let started = AsyncStream.makeStream(of: Result<pid_t, any Error>.self)
        let running = Task.detached {
            do {
                _ = try await Subprocess.run(
                    .path(FilePath(executable)), arguments: Arguments(arguments), environment: environment,
                    input: .none, output: .sequence, error: .fileDescriptor(logFile, closeAfterSpawningProcess: true)
                ) { execution in
                    started.continuation.yield(.success(execution.processIdentifier.value))
                    do {
                        for try await chunk in execution.standardOutput {
                            chunk.withUnsafeBytes { bytes in printed.withLock { $0.append(contentsOf: bytes) } }
                        }
                    } catch {}
                }
            } catch {
                started.continuation.yield(.failure(error))
            }
            exited.set()
            started.continuation.finish()
        }
        var events = started.stream.makeAsyncIterator()
        guard let spawned = await events.next() else { throw CancellationError() }
        let pid = try spawned.get()

        let deadline = ContinuousClock.now + .seconds(30)
        var port: Int?
        while port == nil, ContinuousClock.now < deadline, !exited.isSet {
            let text = String(decoding: printed.withLock { $0 }, as: UTF8.self)
            if let range = text.range(of: pattern, options: .regularExpression) {
                port = Int(text[range].split(separator: ":").last ?? "")
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let child = ChildProcess(port: port ?? 0, pid: pid, running: running, exited: exited)
        guard port != nil else {
            await child.kill()
            Issue.record("\(executable) \(arguments.first ?? "") did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            throw CancellationError()
        }
        return child
    }

    private init(port: Int, pid: pid_t, running: Task<Void, Never>, exited: Flag) {
        self.port = port
        self.pid = pid
        self.running = running
        self.exited = exited
    }

    private var isRunning: Bool { !exited.isSet }

    /// SIGKILL: no drain, no shutdown hooks, nothing flushed.
    func kill() async {
        if isRunning { Foundation.kill(pid, SIGKILL) }
        await waitForExit(within: .seconds(30))
    }

    /// SIGTERM, then waits for the graceful shutdown to finish; SIGKILL after 10 s.
    func terminate() async {
        if isRunning { Foundation.kill(pid, SIGTERM) }
        if !(await waitForExit(within: .seconds(10))) { await kill() }
    }

    @discardableResult
    private func waitForExit(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if !isRunning { await running.value }
        return !isRunning
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

/// Runs a command to completion and returns its status (128 + the signal for one that a signal ended)
/// and its output (stdout and stderr together), through swift-subprocess (see ``ChildProcess``).
func runCommand(_ executable: String, _ arguments: [String], in directory: String? = nil) async throws -> (status: Int32, output: String) {
    let result = try await Subprocess.run(
        .path(FilePath(executable)), arguments: Arguments(arguments), workingDirectory: directory.map { FilePath($0) },
        output: .string(limit: 64 << 20), error: .combinedWithOutput)
    let status: Int32 = switch result.terminationStatus {
    case .exited(let code): code
    case .signaled(let signal): 128 + signal
    }
    return (status, result.standardOutput ?? "")
}
