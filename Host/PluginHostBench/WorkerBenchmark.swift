import Foundation
import Logging
import NIOPosix
import PluginHost
import PluginSDK
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Library plugins in a worker process vs in-process, and the floor under them: the same frames
/// ping-ponged over a socket pair between this process and a bare peer process that only echoes them.
struct WorkerBenchmark {
    let pluginsFolder: String
    let calls = 20_000
    let rounds = 5
    let storageSeconds = 2.0
    let storageCallers = 16
    let httpSeconds = 4
    let httpConnections = 32
    let httpRounds = 5

    struct Result {
        /// ns per sequential echo call through the dispatch path, per round.
        var inProcess: [Double]
        var worker: [Double]
        /// ns per round trip of the bare frame ping-pong, per round.
        var floor: [Double]
        /// Notes `GET notes/{id}` (one storage get each) per second, `storageCallers` at once, per round.
        var storageInProcess: [Double]
        var storageWorker: [Double]
        /// ms from spawn to the worker's ready frame.
        var coldStarts: [Double]
        var idleWorkers: Int
        /// Of the idle workers: mean resident set and mean proportional set (shared pages divided among
        /// the processes sharing them), bytes.
        var idleRSS: Double
        var idlePSS: Double
        /// HTTP echo through a host, req/s per round.
        var httpInProcess: [Double]
        var httpWorker: [Double]
        /// The floor under concurrent calls: round trips per second of the bare frame ping-pong with
        /// `storageCallers` and `httpConnections` frames in flight (each side reading what has come and
        /// answering it in one write), per round.
        var pipelinedStorage: [Double] = []
        var pipelinedHTTP: [Double] = []
    }

    func run() async throws -> Result {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let echoRequest = PluginRequest(method: "POST", path: "echo", headers: ["content-type": "text/plain"], body: Data(repeating: 0x61, count: 64))

        let inProcess = try await BenchRuntime(isolation: .inProcess, pluginsFolder: pluginsFolder, logger: logger)
        let worker = try await BenchRuntime(isolation: .worker, pluginsFolder: pluginsFolder, logger: logger)
        let floor = try FramePingPong(requestBody: echoRequest.body)
        defer { floor.stop() }

        var result = Result(inProcess: [], worker: [], floor: [], storageInProcess: [], storageWorker: [], coldStarts: [], idleWorkers: 0, idleRSS: 0, idlePSS: 0,
                            httpInProcess: [], httpWorker: [])
        // A warm-up of each, then rounds; each round measures the three one after the other.
        _ = try await inProcess.echo(echoRequest, calls: 2_000)
        _ = try await worker.echo(echoRequest, calls: 2_000)
        _ = await floor.run(calls: 2_000)
        for _ in 0..<rounds {
            result.inProcess.append(try await inProcess.echo(echoRequest, calls: calls))
            result.worker.append(try await worker.echo(echoRequest, calls: calls))
            result.floor.append(await floor.run(calls: calls))
        }

        let (storageInProcess, storageWorker) = try await alternatingRounds(rounds, warmUp: true, {
            try await inProcess.noteGets(seconds: storageSeconds, callers: storageCallers)
        }, {
            try await worker.noteGets(seconds: storageSeconds, callers: storageCallers)
        })
        result.storageInProcess = storageInProcess
        result.storageWorker = storageWorker
        for _ in 0..<rounds {
            result.pipelinedStorage.append(await floor.pipelined(roundTrips: 200_000, inFlight: storageCallers))
            result.pipelinedHTTP.append(await floor.pipelined(roundTrips: 200_000, inFlight: httpConnections))
        }
        await inProcess.close()
        await worker.close()

        let (coldStarts, idle) = try await processes(logger: logger)
        result.coldStarts = coldStarts
        result.idleWorkers = idle.count
        result.idleRSS = idle.rss
        result.idlePSS = idle.pss

        (result.httpInProcess, result.httpWorker) = try await http(logger: logger)
        return result
    }

    /// Cold starts of the echo plugin's worker, one at a time; then 100 idle workers at once.
    private func processes(logger: Logger) async throws -> (coldStarts: [Double], idle: (count: Int, rss: Double, pss: Double)) {
        let options = WorkerProcess.Options(
            executable: WorkerConfiguration.besideThisExecutable, libraryPath: pluginsFolder + "/libEchoPlugin.so", pluginID: "example.echo",
            pluginVersion: "1.0.0", maxFrameBytes: 2 << 20, startTimeout: .seconds(10), environment: [:], memoryBytes: 2 << 30, openFiles: 1024
        )
        let watchdog = CallWatchdog()
        func start() async throws -> WorkerProcess {
            try await WorkerProcess.start(options, group: MultiThreadedEventLoopGroup.singleton, watchdog: watchdog, logger: logger) { _, _ in }
        }
        var coldStarts: [Double] = []
        for _ in 0..<21 {
            let started = ContinuousClock.now
            let process = try await start()
            coldStarts.append(milliseconds(ContinuousClock.now - started))
            await process.shutdown(drain: .zero, grace: .seconds(5))
        }
        var idle: [WorkerProcess] = []
        for _ in 0..<100 { idle.append(try await start()) }
        try await Task.sleep(for: .milliseconds(500))
        let figures = idle.compactMap { Self.memory(pid: $0.pid) }
        for process in idle { process.stop(because: "the benchmark is over") }
        for process in idle { await process.shutdown(drain: .zero, grace: .zero) }
        let rss = figures.map(\.rss).reduce(0, +) / Double(max(figures.count, 1))
        let pss = figures.map(\.pss).reduce(0, +) / Double(max(figures.count, 1))
        return (Array(coldStarts.dropFirst()), (figures.count, rss, pss))
    }

    /// Rss and Pss of a process, from `/proc/<pid>/smaps_rollup`, in bytes.
    static func memory(pid: Int32) -> (rss: Double, pss: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Double? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            return line.split(separator: " ").dropFirst().first.flatMap { Double($0) }.map { $0 * 1024 }
        }
        guard let rss = field("Rss"), let pss = field("Pss") else { return nil }
        return (rss, pss)
    }

    /// Echo over HTTP through a host whose plugins run in-process vs one whose plugins run in workers.
    private func http(logger: Logger) async throws -> ([Double], [Double]) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        try echoManifest(pluginsFolder).write(to: folder.appendingPathComponent("manifests/echo.json"), atomically: true, encoding: .utf8)
        let token = "bench-admin-token"
        var hosts: [(any Service, Task<Int, any Error>)] = []
        var services: [any Service] = []
        var ports: [Int] = []
        for isolation in [PluginManifest.Runtime.Isolation.inProcess, .worker] {
            var configuration = HostConfiguration(
                dataDirectory: folder.appendingPathComponent("data-\(isolation.rawValue)").path, port: 0,
                manifestsDirectory: folder.appendingPathComponent("manifests").path, adminToken: token)
            configuration.workers.defaultIsolation = isolation
            let stream = AsyncStream.makeStream(of: Int.self)
            let app = try await buildApplication(configuration: configuration, logger: logger, onServerRunning: { stream.continuation.yield($0) })
            services.append(app)
            hosts.append((app, Task { var iterator = stream.stream.makeAsyncIterator(); return await iterator.next() ?? 0 }))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        for (_, port) in hosts { ports.append(try await port.value) }

        let script = folder.appendingPathComponent("post.lua").path
        try "wrk.method = \"POST\"\nwrk.body = string.rep(\"a\", 64)\nwrk.headers[\"Content-Type\"] = \"text/plain\"\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        for port in ports {
            let base = "http://127.0.0.1:\(port)"
            _ = try await httpCall("POST", base + "/v1/tenants", token: token, body: #"{"id":"bench","name":"bench"}"#)
            _ = try await httpCall("POST", base + "/v1/tenants/bench/workspaces", token: token, body: #"{"id":"ws","name":"ws"}"#)
            let enabled = try await httpCall("PUT", base + "/v1/workspaces/ws/plugins/example.echo", token: token, body: #"{"grants":[]}"#).status
            guard enabled == 200 else { throw BenchError("could not enable echo (\(enabled))") }
        }
        func through(_ port: Int) async throws -> Double {
            try await runWrk("http://127.0.0.1:\(port)/v1/workspaces/ws/plugins/example.echo/resources/echo", connections: httpConnections, seconds: httpSeconds,
                             script: script, arguments: ["-H", "Authorization: Bearer \(token)"]).requestsPerSecond
        }
        let rates = try await alternatingRounds(httpRounds, warmUp: true, { try await through(ports[0]) }, { try await through(ports[1]) })
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return rates
    }
}

/// A runtime on SQLite with the echo and notes plugins enabled in one workspace, run with `isolation`.
struct BenchRuntime {
    let runtime: PluginRuntime
    let folder: String
    let workspace: Workspace
    let caller = Caller(subject: "bench", role: .member)
    let noteID: String

    init(isolation: PluginManifest.Runtime.Isolation, pluginsFolder: String, logger: Logger) async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)").path
        let store = try await SQLiteStore.open(folder: folder)
        var configuration = HostConfiguration(dataDirectory: folder)
        configuration.workers.defaultIsolation = isolation
        runtime = try await PluginRuntime.standalone(configuration: configuration, store: store, logger: logger)
        _ = try await runtime.install(manifestText: echoManifest(pluginsFolder), baseDirectory: pluginsFolder)
        _ = try await runtime.install(manifestText: """
            {"id": "example.notes", "name": "Notes", "version": "1.0.0", "sdk": "^1.0.0",
             "runtime": {"kind": "library", "path": "\(pluginsFolder)/libNotesPlugin.so"},
             "permissions": ["storage.read", "storage.write", "events.publish:notes.*"],
             "routes": [{"method": "POST", "path": "notes"}, {"method": "GET", "path": "notes"}, {"method": "GET", "path": "notes/{id}"}]}
            """, baseDirectory: pluginsFolder)
        _ = try await runtime.createTenant(id: "bench", name: "bench")
        workspace = try await runtime.createWorkspace(id: "ws", name: "ws", tenantID: "bench")
        _ = try await runtime.enable(workspace: workspace, pluginID: "example.echo", grants: [], config: [:], caller: caller)
        _ = try await runtime.enable(workspace: workspace, pluginID: "example.notes", grants: ["storage.read", "storage.write", "events.publish:notes.*"], config: [:], caller: caller)
        let created = try await runtime.dispatch(
            PluginRequest(method: "POST", path: "notes", body: Data(#"{"text": "a note of some forty bytes, give or take"}"#.utf8)),
            workspace: workspace, pluginID: "example.notes", caller: caller)
        guard created.status == 201, let id = (try JSONSerialization.jsonObject(with: created.body) as? [String: Any])?["id"] as? String else {
            throw BenchError("could not create a note (\(created.status))")
        }
        noteID = id
    }

    /// ns per call of `calls` echo calls, one after the other.
    func echo(_ request: PluginRequest, calls: Int) async throws -> Double {
        let started = ContinuousClock.now
        for _ in 0..<calls { _ = try await runtime.dispatch(request, workspace: workspace, pluginID: "example.echo", caller: caller) }
        return nanoseconds(ContinuousClock.now - started) / Double(calls)
    }

    /// `GET notes/{id}` per second, `callers` at once.
    func noteGets(seconds: Double, callers: Int) async throws -> Double {
        let request = PluginRequest(method: "GET", path: "notes/\(noteID)")
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let started = ContinuousClock.now
        let count = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    var done = 0
                    while ContinuousClock.now < deadline {
                        let answer = try await runtime.dispatch(request, workspace: workspace, pluginID: "example.notes", caller: caller)
                        guard answer.status == 200 else { throw BenchError("GET notes/{id} answered \(answer.status)") }
                        done += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(count) / (nanoseconds(ContinuousClock.now - started) / 1e9)
    }

    func close() async {
        await runtime.shutdown()
        try? FileManager.default.removeItem(atPath: folder)
    }
}

/// The floor of a worker call: a request frame as the host sends one for echo, written to a socket pair,
/// answered by a bare peer process (this executable with PLUGIN_HOST_BENCH_FRAME_ECHO=1) with a response
/// frame as the worker sends one; blocking reads and writes on both sides, nothing else.
final class FramePingPong: @unchecked Sendable {
    private let socket: Int32
    private let peer: Process
    private let request: [UInt8]

    init(requestBody: Data) throws {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { throw BenchError("socketpair failed") }
        socket = pair[0]
        peer = Process()
        peer.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        peer.environment = ProcessInfo.processInfo.environment.merging(["PLUGIN_HOST_BENCH_FRAME_ECHO": "1"]) { $1 }
        peer.standardInput = FileHandle(fileDescriptor: pair[1], closeOnDealloc: false)
        try peer.run()
        close(pair[1])
        request = WorkerWire.encode(WorkerWire.Request(
            binding: 1, caller: Caller(subject: "bench", role: .member),
            request: PluginRequest(method: "POST", path: "echo", headers: ["content-type": "text/plain"], body: requestBody, requestID: "bench-request-1")), call: 1)
    }

    /// ns per round trip of `calls` round trips, on a thread of its own (blocking calls stay off Swift's pool).
    func run(calls: Int) async -> Double {
        await withCheckedContinuation { continuation in
            Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                let started = ContinuousClock.now
                for _ in 0..<calls {
                    request.withUnsafeBytes { _ = write(socket, $0.baseAddress, $0.count) }
                    _ = Self.readFrame(socket, into: &buffer)
                }
                continuation.resume(returning: nanoseconds(ContinuousClock.now - started) / Double(calls))
            }.start()
        }
    }

    /// Round trips per second with `inFlight` requests outstanding: each answer read is followed by
    /// another request, and both sides read whatever has arrived and answer all of it in one write (the
    /// best batching a transport can do).
    func pipelined(roundTrips: Int, inFlight: Int) async -> Double {
        await withCheckedContinuation { continuation in
            Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                var have = 0
                var sent = 0
                var answered = 0
                let started = ContinuousClock.now
                Self.send(request, times: inFlight, on: socket)
                sent = inFlight
                while answered < roundTrips {
                    let count = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress! + have, $0.count - have) }  // the buffer is not empty
                    guard count > 0 else { break }
                    have += count
                    let (frames, used) = Self.wholeFrames(buffer, have)
                    buffer.withUnsafeMutableBytes { bytes in
                        if used > 0 { memmove(bytes.baseAddress!, bytes.baseAddress! + used, have - used) }
                    }
                    have -= used
                    answered += frames
                    let more = min(frames, roundTrips - sent)
                    if more > 0 {
                        Self.send(request, times: more, on: socket)
                        sent += more
                    }
                }
                continuation.resume(returning: Double(answered) / (nanoseconds(ContinuousClock.now - started) / 1e9))
            }.start()
        }
    }

    /// Writes `frame` `times` times in one write.
    private static func send(_ frame: [UInt8], times: Int, on socket: Int32) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(frame.count * times)
        for _ in 0..<times { bytes += frame }
        bytes.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(socket, bytes.baseAddress! + offset, bytes.count - offset)  // not empty
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    /// The number of whole frames at the start of `buffer`'s first `count` bytes, and their length.
    private static func wholeFrames(_ buffer: [UInt8], _ count: Int) -> (frames: Int, bytes: Int) {
        var offset = 0
        var frames = 0
        while count - offset >= 4 {
            let length = 4 + Int(UInt32(buffer[offset]) | UInt32(buffer[offset + 1]) << 8 | UInt32(buffer[offset + 2]) << 16 | UInt32(buffer[offset + 3]) << 24)
            guard count - offset >= length else { break }
            offset += length
            frames += 1
        }
        return (frames, offset)
    }

    func stop() {
        close(socket)
        peer.waitUntilExit()
    }

    /// Reads one whole frame; the byte count, or 0 at the end of the stream.
    static func readFrame(_ socket: Int32, into buffer: inout [UInt8]) -> Int {
        var have = 0
        var need = 4
        while have < need {
            let count = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress! + have, need - have) }  // the buffer is not empty
            guard count > 0 else { return 0 }
            have += count
            if have >= 4 && need == 4 {
                need = 4 + Int(UInt32(buffer[0]) | UInt32(buffer[1]) << 8 | UInt32(buffer[2]) << 16 | UInt32(buffer[3]) << 24)
                if need > buffer.count { buffer += [UInt8](repeating: 0, count: need - buffer.count) }
            }
        }
        return have
    }

    /// The peer: answers each frame on standard input with an echo response frame of the same call,
    /// all the frames of one read in one write.
    static func servePeer() -> Never {
        // What the worker answers echo with: the 64-byte body back.
        let answer = WorkerWire.encode(PluginResponse(status: 200, headers: ["content-type": "text/plain"], body: Data(repeating: 0x61, count: 64)), call: 1)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var have = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress! + have, $0.count - have) }  // the buffer is not empty
            guard count > 0 else { exit(0) }
            have += count
            var offset = 0
            var out: [UInt8] = []
            while have - offset >= 4 {
                let length = 4 + Int(UInt32(buffer[offset]) | UInt32(buffer[offset + 1]) << 8 | UInt32(buffer[offset + 2]) << 16 | UInt32(buffer[offset + 3]) << 24)
                guard have - offset >= length else { break }
                var frame = answer
                frame.replaceSubrange(5..<13, with: buffer[(offset + 5)..<(offset + 13)])  // the call's number
                out += frame
                offset += length
            }
            buffer.withUnsafeMutableBytes { bytes in
                if offset > 0 { memmove(bytes.baseAddress!, bytes.baseAddress! + offset, have - offset) }
            }
            have -= offset
            out.withUnsafeBytes { bytes in
                var written = 0
                while written < bytes.count {
                    let count = write(0, bytes.baseAddress! + written, bytes.count - written)
                    guard count > 0 else { exit(0) }
                    written += count
                }
            }
        }
    }
}

func nanoseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
}

func milliseconds(_ duration: Duration) -> Double { nanoseconds(duration) / 1e6 }
