import Foundation
import Logging
import NIOCore
import PluginSDK
import Synchronization

/// A library plugin run in a `plugin-host-worker` process of its own, supervised: a worker that ends is
/// restarted after a wait that doubles with each crash, and a plugin whose worker crashes too often in a
/// while is quarantined until an admin lifts it. A call past its time limit stops the worker (a call it
/// does not answer may never end), so a plugin stuck in a loop costs a restart, not a thread.
package final class WorkerPlugin: RunningPlugin {
    let id: String
    let callLimit: Duration
    let eventDelivery: EventDeliveryPolicy
    private let options: WorkerProcess.Options
    private let services: WorkerServices
    private let state = Mutex(State())

    private struct State {
        var process: WorkerProcess?
        /// The start in progress (a restart waits out its backoff in it first).
        var starting: Task<WorkerProcess, any Error>?
        /// When the restart in progress spawns its worker.
        var restartAt: ContinuousClock.Instant?
        var crashTimes: [ContinuousClock.Instant] = []
        var crashes = 0
        var restarts = 0
        var lastCrash: WorkerProcess.Exit?
        var quarantine: String?
        var stopped = false
        /// The process being stopped on purpose: its end is not a crash.
        var retiring: ObjectIdentifier?
    }

    /// What `GET /v1/plugins/{id}` and `/metrics` show of it.
    struct Status: Sendable, Codable {
        struct Crash: Sendable, Codable {
            var status: String
            var reason: String?
            var stderr: [String]
            var at: Date
        }
        var pid: Int32?
        /// `running`, `starting`, `restarting`, `quarantined`, `stopped`, `idle`.
        var state: String
        var restarts: Int
        var crashes: Int
        var quarantined: Bool
        var quarantineReason: String?
        var lastCrash: Crash?
        var rssBytes: Int?
    }

    init(manifest: PluginManifest, services: WorkerServices) {
        self.id = manifest.id
        self.callLimit = services.configuration.pluginTimeout
        self.eventDelivery = EventDeliveryPolicy(retry: services.configuration.eventRetry)
        self.services = services
        self.options = WorkerProcess.Options(
            executable: services.configuration.workers.executable, libraryPath: manifest.runtime.resolvedPath, pluginID: manifest.id,
            pluginVersion: manifest.version, maxFrameBytes: services.maxFrameBytes, startTimeout: services.configuration.workers.startTimeout,
            environment: services.configuration.workers.environment,
            memoryBytes: min(manifest.limits?.memoryBytes ?? .max, services.configuration.workers.maxMemoryBytes),
            openFiles: min(manifest.limits?.openFiles ?? .max, services.configuration.workers.maxOpenFiles)
        )
    }

    var runStatus: RunStatus { RunStatus(worker: status) }

    var status: Status {
        let (process, starting, snapshot) = state.withLock { ($0.process, $0.starting != nil, $0) }
        let name: String
        if snapshot.quarantine != nil {
            name = "quarantined"
        } else if snapshot.stopped {
            name = "stopped"
        } else if process != nil {
            name = "running"
        } else if starting {
            name = snapshot.restarts > 0 || snapshot.lastCrash != nil ? "restarting" : "starting"
        } else {
            name = "idle"
        }
        let pid = process?.pid
        return Status(
            pid: pid, state: name, restarts: snapshot.restarts, crashes: snapshot.crashes, quarantined: snapshot.quarantine != nil,
            quarantineReason: snapshot.quarantine,
            lastCrash: snapshot.lastCrash.map { Status.Crash(status: $0.status, reason: $0.stoppedBecause, stderr: $0.stderr, at: $0.at) },
            rssBytes: pid.flatMap(Self.residentBytes)
        )
    }

    /// Its figures in `/metrics`: after each change of state and each health check.
    private func publishMetrics() {
        let status = status
        services.metrics.recordWorker(
            plugin: id, up: status.state == "running", restarts: status.restarts, crashes: status.crashes, quarantined: status.quarantined,
            residentBytes: status.rssBytes)
    }

    // MARK: Calls

    func handle(_ request: PluginRequest, context: CallContext, started: ContinuousClock.Instant) async throws -> PluginResponse {
        let deadline = started + callLimit
        let answer = try await call(context: context, deadline: deadline) { call, binding in
            WorkerWire.encode(WorkerWire.Request(binding: binding, caller: context.caller, request: request), call: call)
        }
        switch answer.kind {
        case .response:
            do {
                return try WorkerWire.response(answer.payload)
            } catch {
                throw malformed(answer, error)
            }
        default:
            throw try failure(answer)
        }
    }

    func handle(events: [PluginEvent], context: CallContext) async throws {
        try await done(try await call(context: context, deadline: .now + callLimit) { call, binding in
            WorkerWire.encode(WorkerWire.Events(binding: binding, caller: context.caller, events: events), call: call)
        })
    }

    func enabled(context: CallContext) async throws {
        try await hook(.enabled, context: context)
    }

    func disabled(context: CallContext) async throws {
        defer { state.withLock(\.process)?.unbind(context.bound) }
        try await hook(.disabled, context: context)
    }

    private func hook(_ name: WorkerWire.HookName, context: CallContext) async throws {
        try await done(try await call(context: context, deadline: .now + callLimit) { call, binding in
            WorkerWire.encode(WorkerWire.Hook(binding: binding, hook: name, caller: context.caller), call: call)
        })
    }

    private func done(_ answer: WorkerWire.Frame) async throws {
        guard answer.kind == .done else { throw try failure(answer) }
    }

    /// The error of an answer that is not the one asked for: the plugin's failure, or the worker's fault.
    private func failure(_ answer: WorkerWire.Frame) throws -> any Error {
        guard answer.kind == .failure else { return malformed(answer, WorkerWire.Malformed("a \(answer.kind) frame where an answer was due")) }
        do {
            switch try WorkerWire.failure(answer.payload) {
            case .plugin(let error): return error
            case .thrown(let description): return WorkerThrew(description: description)
            case .responseTooLarge(let bytes):
                return HostError.responseTooLarge(plugin: id, bytes: Int(clamping: bytes), limit: services.configuration.maxResponseSize)
            }
        } catch {
            return malformed(answer, error)
        }
    }

    private func malformed(_ answer: WorkerWire.Frame, _ error: any Error) -> HostError {
        let reason = "it answered call \(answer.call) with a malformed \(answer.kind) frame: \(error)"
        state.withLock(\.process)?.stop(because: reason)
        return .pluginCrashed(plugin: id, why: reason)
    }

    /// Sends a call to the worker, started first if need be. The plugin's time limit counts from the
    /// call's start, or from the moment the worker was ready when it had to be started (or restarted)
    /// for it: a cold start is the host's work, bounded by its own limit.
    private func call(
        context: CallContext?, deadline: ContinuousClock.Instant, _ frame: @escaping (_ call: UInt64, _ binding: UInt32) -> [UInt8]
    ) async throws -> WorkerWire.Frame {
        let (process, waited) = try await running(by: deadline)
        let limit = waited ? max(deadline, .now + callLimit) : deadline
        return try await process.call(context: context, deadline: limit, timeout: callLimit, frame)
    }

    // MARK: Supervision

    /// The running worker, started (or waited for, up to the start's own limit past `deadline`) if there
    /// is none, unless the plugin is quarantined or its restart after a crash comes after `deadline`.
    func running(by deadline: ContinuousClock.Instant) async throws -> (process: WorkerProcess, waited: Bool) {
        let (process, starting): (WorkerProcess?, Task<WorkerProcess, any Error>?) = try state.withLock { state in
            if let quarantine = state.quarantine { throw HostError.pluginQuarantined(plugin: id, why: quarantine) }
            if state.stopped { throw HostError.pluginUnavailable(plugin: id, why: "the host is stopping") }
            if let process = state.process { return (process, nil) }
            if let restartAt = state.restartAt, restartAt > deadline {
                throw HostError.pluginUnavailable(plugin: id, why: "its worker crashed and restarts in \(restartAt - .now)")
            }
            if let starting = state.starting { return (nil, starting) }
            let starting = startTask(after: .zero)
            state.starting = starting
            return (nil, starting)
        }
        if let process { return (process, false) }
        // A caller whose time runs out first stops waiting; the start goes on for the next one.
        let startLimit = deadline + services.configuration.workers.startTimeout
        return try await withThrowingTaskGroup(of: WorkerProcess?.self) { group in
            group.addTask { try await starting!.value }  // one of the two is set above
            group.addTask {
                try? await Task.sleep(until: startLimit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let process = first else {
                throw HostError.pluginUnavailable(plugin: id, why: "its worker did not start in time")
            }
            return (process, true)
        }
    }

    private func startTask(after delay: Duration) -> Task<WorkerProcess, any Error> {
        Task { [self] in
            if delay > .zero { try? await Task.sleep(for: delay) }
            if Task.isCancelled || state.withLock(\.stopped) {
                state.withLock { state in
                    state.starting = nil
                    state.restartAt = nil
                }
                throw HostError.pluginUnavailable(plugin: id, why: "the host is stopping")
            }
            do {
                let started = ContinuousClock.now
                let process = try await WorkerProcess.start(
                    options, group: services.eventLoopGroup, watchdog: services.watchdog, logger: services.logger
                ) { [weak self] process, exit in self?.ended(process, exit) }
                // Installed only if it still runs and the runner was not stopped meanwhile: a worker that
                // ended between its ready frame and here was counted by ended(_:), which left the restart
                // to this task.
                enum Outcome { case installed, ended, stopped }
                let outcome: Outcome = state.withLock { state in
                    state.starting = nil
                    state.restartAt = nil
                    if state.stopped { return .stopped }
                    if process.exit != nil { return .ended }
                    state.process = process
                    return .installed
                }
                switch outcome {
                case .installed: break
                case .stopped:
                    await process.shutdown(drain: .zero, grace: services.configuration.workers.shutdownGrace)
                    throw HostError.pluginUnavailable(plugin: id, why: "the host is stopping")
                case .ended:
                    throw HostError.pluginCrashed(plugin: id, why: process.exit?.description ?? "it ended as it started")
                }
                // Its library's load: in the worker, from spawn to ready.
                services.metrics.recordLoad(plugin: id, duration: ContinuousClock.now - started)
                publishMetrics()
                return process
            } catch {
                // Its end was counted by ended(_:) if it was spawned at all.
                state.withLock { state in
                    state.starting = nil
                    state.restartAt = nil
                }
                throw error
            }
        }
    }

    /// A worker ended: a crash (counted, and restarted after its backoff, or quarantined) unless the host
    /// stopped it on purpose.
    private func ended(_ process: WorkerProcess, _ exit: WorkerProcess.Exit) {
        enum Next { case nothing, restart(Duration), quarantined(String) }
        let next: Next = state.withLock { state in
            if state.process === process { state.process = nil }
            if state.retiring == ObjectIdentifier(process) {
                state.retiring = nil
                return .nothing
            }
            if state.stopped { return .nothing }
            let now = ContinuousClock.now
            let workers = services.configuration.workers
            state.crashes += 1
            state.lastCrash = exit
            state.crashTimes = state.crashTimes.filter { now - $0 < workers.quarantineWindow } + [now]
            if state.crashTimes.count >= workers.quarantineCrashes {
                let reason = "its worker crashed \(state.crashTimes.count) times within \(workers.quarantineWindow); the last: \(exit)"
                state.quarantine = reason
                return .quarantined(reason)
            }
            // A worker that ended while starting is started again by the next call.
            guard state.starting == nil else { return .nothing }
            let doublings = min(state.crashTimes.count - 1, 30)
            let delay = min(workers.restart.initialDelay * (1 << doublings), workers.restart.maxDelay)
            state.restarts += 1
            state.restartAt = now + delay
            state.starting = startTask(after: delay)
            return .restart(delay)
        }
        publishMetrics()
        let metadata: Logger.Metadata = ["plugin.id": "\(id)", "worker.exit": "\(exit)", "worker.stderr": "\(exit.stderr.suffix(5).joined(separator: " | "))"]
        switch next {
        case .nothing: break
        case .restart(let delay): services.logger.error("plugin worker ended; restarting it", metadata: metadata.merging(["restart.in": "\(delay)"]) { $1 })
        case .quarantined(let reason): services.logger.error("plugin worker ended; the plugin is quarantined", metadata: metadata.merging(["quarantine": "\(reason)"]) { $1 })
        }
    }

    /// Lifts the quarantine and clears the crash count; the next call starts a worker.
    func liftQuarantine() -> Bool {
        let lifted = state.withLock { state in
            guard state.quarantine != nil else { return false }
            state.quarantine = nil
            state.crashTimes = []
            return true
        }
        publishMetrics()
        return lifted
    }

    /// Pings an idle worker; one that does not answer in time is stopped (and restarted). A worker with
    /// calls in flight is not pinged: its one loop thread answers a ping only between calls, and those
    /// calls' own time limits stop it if it is stuck.
    func checkHealth() async {
        defer { publishMetrics() }
        guard let process = state.withLock(\.process), process.inFlight == 0 else { return }
        let limit = services.configuration.workers.pingTimeout
        do {
            let answer = try await process.call(context: nil, deadline: .now + limit, timeout: limit) { call, _ in WorkerWire.encode(.ping, call: call) }
            if answer.kind != .pong { process.stop(because: "it answered a health ping with a \(answer.kind) frame") }
        } catch {
            // A timed-out ping has stopped it already; a crash is reported by its exit.
        }
    }

    /// Starts the worker unless it runs, waiting out a restart's backoff if it comes within the call limit.
    func start() async throws {
        _ = try await running(by: .now + callLimit)
    }

    func shutdown() async {
        let process = state.withLock { state -> WorkerProcess? in
            state.stopped = true
            state.starting?.cancel()
            if let process = state.process { state.retiring = ObjectIdentifier(process) }
            return state.process
        }
        await process?.shutdown(drain: callLimit, grace: services.configuration.workers.shutdownGrace)
    }

    /// The resident set of process `pid`, from `/proc/<pid>/statm`.
    package static func residentBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages.multipliedReportingOverflow(by: Int(sysconf(Int32(_SC_PAGESIZE)))).partialValue
    }
}

/// What a plugin in a worker threw that is not a ``PluginError``: logged by the host as described, never
/// shown to the caller.
struct WorkerThrew: Error, CustomStringConvertible, CustomDebugStringConvertible {
    let description: String
    var debugDescription: String { description }
}

/// What every worker runner shares.
struct WorkerServices: Sendable {
    let configuration: HostConfiguration
    let eventLoopGroup: any EventLoopGroup
    let watchdog: CallWatchdog
    let metrics: HostMetrics
    let logger: Logger

    /// A request body or an answer at the host's limits fits, with room for its headers and context
    /// (a larger answer is refused by the worker, and one just over the limit by the host).
    var maxFrameBytes: UInt32 {
        UInt32(clamping: max(configuration.maxBodySize, configuration.maxResponseSize).addingReportingOverflow(1 << 20).partialValue)
    }
}
