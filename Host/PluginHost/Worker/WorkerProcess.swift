import Foundation
import Logging
import NIOCore
import NIOPosix
import PluginSDK
import Subprocess
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// One running `plugin-host-worker` process and the host's end of its socket pair.
///
/// Calls are numbered per process; the worker answers each by its number, and every SDK call it makes
/// names the number of a call in flight, whose context (workspace, grants) is the only one it can
/// reach. A number that is not in flight on this process is refused. When the process ends, for any
/// reason, its calls in flight fail with ``HostError/pluginCrashed(plugin:why:)`` and ``onExit`` is told
/// how it ended.
package final class WorkerProcess: Sendable {
    /// How a worker ended.
    package struct Exit: Sendable, CustomStringConvertible {
        /// `exited with status 3`, `killed by signal 11 (SIGSEGV)`.
        var status: String
        /// Why the host stopped it, if it did (a timeout, a malformed frame, a stop).
        var stoppedBecause: String?
        /// The last lines it wrote to standard error.
        var stderr: [String]
        var at: Date

        package var description: String { stoppedBecause.map { "\(status): \($0)" } ?? status }
    }

    package struct Options: Sendable {
        package var executable: String
        package var libraryPath: String
        package var pluginID: String
        package var pluginVersion: String
        /// The longest frame either side may send.
        package var maxFrameBytes: UInt32
        /// How long the worker may take from spawn to ready.
        package var startTimeout: Duration
        /// Added to the environment it inherits.
        package var environment: [String: String]
        /// Its address space and open files at most (the worker sets them on itself before loading).
        package var memoryBytes: UInt64
        package var openFiles: Int

        package init(
            executable: String, libraryPath: String, pluginID: String, pluginVersion: String, maxFrameBytes: UInt32, startTimeout: Duration,
            environment: [String: String], memoryBytes: UInt64, openFiles: Int
        ) {
            self.memoryBytes = memoryBytes
            self.openFiles = openFiles
            self.executable = executable
            self.libraryPath = libraryPath
            self.pluginID = pluginID
            self.pluginVersion = pluginVersion
            self.maxFrameBytes = maxFrameBytes
            self.startTimeout = startTimeout
            self.environment = environment
        }
    }

    private struct InFlight {
        var continuation: CheckedContinuation<WorkerWire.Frame, any Error>
        /// The context the worker's SDK calls for this call run in; `nil` for a ping.
        var context: CallContext?
        var watchdogEntry: UInt64?
    }

    private struct State {
        var channel: (any Channel)?
        var pid: Int32 = 0
        var nextCall: UInt64 = 1
        var calls: [UInt64: InFlight] = [:]
        var bindings: [ObjectIdentifier: (id: UInt32, bound: BoundPlugin)] = [:]
        var nextBinding: UInt32 = 1
        var ready: CheckedContinuation<Void, any Error>?
        /// The watchdog entry that stops a worker that does not become ready in time.
        var startDeadline: UInt64?
        var stopReason: String?
        var exit: Exit?
        var stderr: [String] = []
        /// Whether a line of its standard error reported a failed allocation (it may be long before the
        /// last lines, above a backtrace).
        var allocationFailed = false
    }

    /// The host's end of the socket again (a duplicate of the channel's), written directly by the
    /// caller that sends a frame: no hop to the event loop for it.
    private struct Writer {
        var channel: (any Channel)?
        /// -1 once the worker has ended.
        var descriptor: Int32 = -1
    }

    let options: Options
    let logger: Logger
    private let state = Mutex(State())
    /// Taken after `state` when both are (a binding is sent under both), never before it.
    private let writer = Mutex(Writer())
    /// Frames handed to the channel because the socket was full, not yet written: while any is, later
    /// frames go the same way, so that they stay in order. Counted down by the event loop without a lock.
    private let queued = Atomic<Int>(0)
    private let watchdog: CallWatchdog
    private let onExit: @Sendable (WorkerProcess, Exit) -> Void

    package var pid: Int32 { state.withLock(\.pid) }
    package var exit: Exit? { state.withLock(\.exit) }
    var inFlight: Int { state.withLock { $0.calls.count } }

    private init(options: Options, watchdog: CallWatchdog, logger: Logger, onExit: @escaping @Sendable (WorkerProcess, Exit) -> Void) {
        self.options = options
        self.watchdog = watchdog
        self.logger = logger
        self.onExit = onExit
    }

    /// Spawns a worker, hands it the library and waits until it has loaded it.
    package static func start(
        _ options: Options, group: any EventLoopGroup, watchdog: CallWatchdog, logger: Logger, onExit: @escaping @Sendable (WorkerProcess, Exit) -> Void
    ) async throws -> WorkerProcess {
        let process = WorkerProcess(options: options, watchdog: watchdog, logger: logger, onExit: onExit)
        var descriptors: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &descriptors) == 0 else {
            throw HostError.pluginUnavailable(plugin: options.pluginID, why: "no socket pair for its worker: \(String(cString: strerror(errno)))")
        }
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WorkerFrameDecoder(limit: options.maxFrameBytes)))
                        try channel.pipeline.syncOperations.addHandler(WorkerChannelHandler(process: process))
                    }
                }
                .withConnectedSocket(descriptors[0])
                .get()
        } catch {
            // NIO closed the host's end when it failed to take it; the worker's end is still ours.
            close(descriptors[1])
            throw HostError.pluginUnavailable(plugin: options.pluginID, why: "its worker's socket could not be used: \(error)")
        }
        // The channel reads; frames are written on a duplicate of its socket (non-blocking, as the
        // channel's is: it is the same open file).
        let writeDescriptor = fcntl(descriptors[0], F_DUPFD_CLOEXEC, 0)
        guard writeDescriptor >= 0 else {
            channel.close(promise: nil)
            close(descriptors[1])
            throw HostError.pluginUnavailable(plugin: options.pluginID, why: "its worker's socket could not be duplicated: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(writeDescriptor, F_SETFL, fcntl(writeDescriptor, F_GETFL) | O_NONBLOCK)
        process.state.withLock { $0.channel = channel }
        process.writer.withLock {
            $0.channel = channel
            $0.descriptor = writeDescriptor
        }

        let workerEnd = descriptors[1]
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            process.state.withLock { $0.ready = ready }
            // It lives as long as the process; its end is reported through `onExit`.
            Task.detached { await process.run(socket: workerEnd) }
        }
        return process
    }

    /// Runs the process until it ends; resumes the start with its readiness or failure on the way.
    private func run(socket: Int32) async {
        var platform = PlatformOptions()
        // A group of its own: what the plugin forks is stopped with it.
        platform.processGroupID = 0
        let outcome: Result<TerminationStatus, any Error>
        do {
            let result = try await Subprocess.run(
                .path(FilePath(options.executable)),
                arguments: [options.pluginID],
                environment: .inherit.updating(Dictionary(uniqueKeysWithValues: options.environment.map { (Environment.Key(stringLiteral: $0.key), Optional($0.value)) })),
                platformOptions: platform,
                input: .fileDescriptor(FileDescriptor(rawValue: socket), closeAfterSpawningProcess: true),
                output: .sequence,
                error: .sequence
            ) { execution in
                let pid = execution.processIdentifier.value
                // Cleared by the ready frame; in place before the hello that the ready frame answers.
                let startDeadline = watchdog.add(deadline: .now + options.startTimeout) { [self] in
                    stop(because: "it did not load the plugin within \(options.startTimeout)")
                }
                state.withLock {
                    $0.pid = pid
                    $0.startDeadline = startDeadline
                }
                defer { watchdog.remove(startDeadline) }
                send(WorkerWire.encode(WorkerWire.Hello(
                    libraryPath: options.libraryPath, pluginID: options.pluginID, pluginVersion: options.pluginVersion, maxFrameBytes: options.maxFrameBytes,
                    memoryBytes: options.memoryBytes, openFiles: UInt32(clamping: options.openFiles))))
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { [self] in
                        var lines = OutputLines()
                        do {
                            for try await chunk in execution.standardOutput {
                                chunk.withUnsafeBytes { lines.append($0) { logOutput($0, stream: "stdout") } }
                            }
                        } catch {}
                        lines.flush { logOutput($0, stream: "stdout") }
                        ended()
                    }
                    group.addTask { [self] in
                        var lines = OutputLines()
                        do {
                            for try await chunk in execution.standardError {
                                chunk.withUnsafeBytes { lines.append($0) { logOutput($0, stream: "stderr") } }
                            }
                        } catch {}
                        lines.flush { logOutput($0, stream: "stderr") }
                        ended()
                    }
                }
            }
            outcome = .success(result.terminationStatus)
        } catch {
            // Subprocess closes the worker's end of the socket itself, on failure as on success.
            outcome = .failure(error)
        }
        finish(outcome)
    }

    // MARK: Calls

    /// Sends a frame made with the call's number, and waits for the worker's answer to it, or the end
    /// of its time limit (then the worker is stopped: a call it does not answer may never end).
    func call(
        context: CallContext?, deadline: ContinuousClock.Instant?, timeout: Duration, _ frame: (_ call: UInt64, _ binding: UInt32) -> [UInt8]
    ) async throws -> WorkerWire.Frame {
        var binding: UInt32 = 0
        if let context { binding = bind(context.bound) }
        return try await withCheckedThrowingContinuation { continuation in
            let number: UInt64? = state.withLock { state in
                guard state.exit == nil, state.stopReason == nil else { return nil }
                let number = state.nextCall
                state.nextCall += 1
                state.calls[number] = InFlight(continuation: continuation, context: context)
                return number
            }
            guard let number else {
                continuation.resume(throwing: HostError.pluginCrashed(plugin: options.pluginID, why: stateDescription()))
                return
            }
            if let deadline {
                let entry = watchdog.add(deadline: deadline) { [self] in
                    guard let expired = state.withLock({ $0.calls.removeValue(forKey: number) }) else { return }
                    expired.continuation.resume(throwing: HostError.pluginTimeout(plugin: options.pluginID, after: timeout))
                    stop(because: "call \(number) ran past its time limit of \(timeout)")
                }
                state.withLock { state in
                    if state.calls[number] != nil { state.calls[number]?.watchdogEntry = entry } else { watchdog.remove(entry) }
                }
            }
            let bytes = frame(number, binding)
            guard fits(bytes) else {
                if let call = state.withLock({ $0.calls.removeValue(forKey: number) }) {
                    if let entry = call.watchdogEntry { watchdog.remove(entry) }
                    call.continuation.resume(throwing: HostError.pluginUnavailable(
                        plugin: options.pluginID, why: "the call takes \(bytes.count) bytes, over its worker's frame limit of \(options.maxFrameBytes)"))
                }
                return
            }
            send(bytes)
        }
    }

    /// The number the worker knows `bound` by on this connection, sent with its context on first use.
    private func bind(_ bound: BoundPlugin) -> UInt32 {
        let key = ObjectIdentifier(bound)
        if let known = state.withLock({ $0.bindings[key]?.id }) { return known }
        let config = (try? JSONEncoder().encode(bound.config)) ?? Data("{}".utf8)
        // Sent under the lock: a caller that finds the binding known afterwards sends its call after it.
        return state.withLock { state in
            if let known = state.bindings[key] { return known.id }
            let id = state.nextBinding
            state.nextBinding &+= 1
            state.bindings[key] = (id, bound)
            send(WorkerWire.encode(WorkerWire.Binding(
                id: id, tenantID: bound.tenantID, workspaceID: bound.workspaceID, grants: bound.grants.permissions.map(\.description).sorted(), config: config)))
            return id
        }
    }

    /// Forgets an enablement's context (it was disabled).
    func unbind(_ bound: BoundPlugin) {
        guard let known = state.withLock({ $0.bindings.removeValue(forKey: ObjectIdentifier(bound)) }) else { return }
        send(WorkerWire.encodeUnbind(known.id))
    }

    /// Writes a frame on the caller's thread, as far as the socket takes it without waiting; what it
    /// does not take goes to the channel, which writes it when the worker has read enough (and the
    /// frames after it follow it there until it is written). Never blocks, so it may be called under the
    /// state's lock; the writer's lock keeps the frames whole and in order.
    private func send(_ frame: [UInt8]) {
        writer.withLock { writer in
            guard writer.descriptor >= 0, let channel = writer.channel else { return }
            var written = 0
            if queued.load(ordering: .acquiring) == 0 {
                written = frame.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        // Not SIGPIPE if the worker is gone: the channel sees it end.
                        let count = Glibc.send(writer.descriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))  // frames are never empty
                        if count >= 0 {
                            offset += count
                        } else if errno != EINTR {
                            break  // full (EAGAIN), or the worker is gone
                        }
                    }
                    return offset
                }
                if written == frame.count { return }
            }
            queued.add(1, ordering: .acquiringAndReleasing)
            let buffer = channel.allocator.buffer(bytes: frame[written...])
            // Always as a task of the event loop, also from the loop itself: a write done inline could
            // fail and close the channel, whose handlers take the state's lock, under the writer's.
            // Tasks run in the order they were submitted, and they are submitted under the writer's lock.
            channel.eventLoop.execute { [self] in
                channel.writeAndFlush(buffer).whenComplete { [self] _ in queued.subtract(1, ordering: .acquiringAndReleasing) }
            }
        }
    }

    /// Whether a frame fits the worker's reader, which would end the worker for one that does not.
    private func fits(_ frame: [UInt8]) -> Bool {
        frame.count - 4 <= Int(options.maxFrameBytes)
    }

    // MARK: From the worker

    /// A frame from the worker, on the channel's event loop: answers resume their caller, SDK calls and
    /// logs run in the context of the call they name.
    func received(_ frame: WorkerWire.Frame) {
        switch frame.kind {
        case .ready:
            do {
                let answer = try WorkerWire.ready(frame.payload)
                guard answer.version == WorkerWire.version else {
                    return stop(because: "the worker speaks frame version \(answer.version), this host \(WorkerWire.version): install the plugin-host-worker built with this host")
                }
                let (ready, startDeadline) = state.withLock { ($0.ready.take(), $0.startDeadline.take()) }
                if let startDeadline { watchdog.remove(startDeadline) }
                ready?.resume()
            } catch {
                stop(because: "its ready frame is malformed: \(error)")
            }
        case .loadFailed:
            let message = (try? WorkerWire.message(frame.payload)) ?? "a malformed load failure"
            state.withLock { $0.stopReason = $0.stopReason ?? "it could not load the plugin: \(message)" }
        case .response, .failure, .done, .pong:
            guard let call = state.withLock({ $0.calls.removeValue(forKey: frame.call) }) else { return }  // timed out already
            if let entry = call.watchdogEntry { watchdog.remove(entry) }
            call.continuation.resume(returning: frame)
        case .sdk:
            sdk(frame)
        case .log:
            log(frame)
        case .hello, .bind, .unbind, .request, .events, .hook, .sdkReply, .ping, .shutdown:
            stop(because: "it sent a \(frame.kind) frame, which only the host sends")
        }
    }

    private func sdk(_ frame: WorkerWire.Frame) {
        let request: (onBehalfOf: UInt64, call: WorkerWire.SDKCall)
        do {
            request = try WorkerWire.sdk(frame.payload)
        } catch {
            return stop(because: "it sent a malformed SDK call: \(error)")
        }
        guard let context = state.withLock({ $0.calls[request.onBehalfOf]?.context }) else {
            logger.warning("worker named a call that is not in flight", metadata: ["plugin.id": "\(options.pluginID)", "call": "\(request.onBehalfOf)"])
            return send(WorkerWire.encode(.failed(.badRequest("call \(request.onBehalfOf) is not in flight on this worker")), call: frame.call))
        }
        let number = frame.call
        Task {
            let result: WorkerWire.SDKResult
            do {
                switch request.call {
                case .get(let key): result = .value(try await context.storage.get(key))
                case .put(let key, let value, let expected):
                    if let expected {
                        result = .version(try await context.storage.put(key, value, ifVersion: expected))
                    } else {
                        result = .version(try await context.storage.put(key, value))
                    }
                case .delete(let key): result = .deleted(try await context.storage.delete(key))
                case .list(let prefix, let limit, let after): result = .page(try await context.storage.list(prefix: prefix, limit: Int(limit), after: after))
                case .publish(let type, let payload):
                    try await context.events.publish(type: type, payload: payload)
                    result = .published
                case .commit(let batch): result = .committed(try await context.storage.commit(batch))
                }
            } catch let error as PluginError {
                result = .failed(error)
            } catch {
                logger.error("SDK call of a worker failed", metadata: ["plugin.id": "\(options.pluginID)", "error": "\(error)"])
                result = .failed(.unavailable("the host could not complete the call"))
            }
            var reply = WorkerWire.encode(result, call: number)
            if !fits(reply) {
                reply = WorkerWire.encode(.failed(.limitExceeded(
                    "the answer takes \(reply.count) bytes, over the worker's frame limit of \(options.maxFrameBytes); ask for fewer entries")), call: number)
            }
            send(reply)
        }
    }

    private func log(_ frame: WorkerWire.Frame) {
        guard let record = try? WorkerWire.log(frame.payload) else { return stop(because: "it sent a malformed log record") }
        if let context = state.withLock({ $0.calls[frame.call]?.context }) {
            context.logger.log(level: record.level, record.message, metadata: record.metadata)
        } else {
            SwiftLogPluginLogger(logger: logger, pluginID: options.pluginID, workspaceID: "-", requestID: nil)
                .log(level: record.level, record.message, metadata: record.metadata)
        }
    }

    private func logOutput(_ line: String, stream: String) {
        if stream == "stderr" {
            let allocationFailed = Self.reportsAllocationFailure(line)
            state.withLock { state in
                if allocationFailed { state.allocationFailed = true }
                state.stderr.append(String(line.prefix(500)))
                if state.stderr.count > 20 { state.stderr.removeFirst(state.stderr.count - 20) }
            }
        }
        logger.info("\(line)", metadata: ["plugin.id": "\(options.pluginID)", "worker.pid": "\(pid)", "stream": "\(stream)"])
    }

    // MARK: Ending

    /// Kills the process and what it forked; its calls fail once it is gone.
    package func stop(because reason: String) {
        let pid = state.withLock { state -> Int32 in
            if state.stopReason == nil { state.stopReason = reason }
            return state.exit == nil ? state.pid : 0
        }
        if pid > 0 {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)  // should it have left its group
        }
    }

    /// Lets the calls in flight finish (for up to `drain`), then asks the worker to run the plugin's
    /// `shutdown` and exit; kills it if it has not within `grace`.
    /// A caller that is cancelled (its own time ran out) gets the worker killed at once.
    package func shutdown(drain: Duration, grace: Duration) async {
        let drained = ContinuousClock.now + drain
        while exit == nil, inFlight > 0, ContinuousClock.now < drained, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
        send(WorkerWire.encode(.shutdown, call: 0))
        let deadline = ContinuousClock.now + grace
        while exit == nil, ContinuousClock.now < deadline, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
        if exit == nil { stop(because: Task.isCancelled ? "the host stopped waiting for it" : "it did not stop within \(grace) of being asked to") }
        let reaped = ContinuousClock.now + .seconds(5)
        while exit == nil, ContinuousClock.now < reaped, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// The socket or an output stream ended: the worker is exiting, or has. Whatever it forked goes too.
    fileprivate func ended() {
        let pid = state.withLock { $0.exit == nil ? $0.pid : 0 }
        if pid > 0 { kill(-pid, SIGKILL) }
    }

    private func finish(_ outcome: Result<TerminationStatus, any Error>) {
        let status: String
        switch outcome {
        case .success(.exited(let code)): status = "exited with status \(code)"
        case .success(.signaled(let signal)): status = "killed by signal \(signal)" + (Self.signalNames[signal].map { " (\($0))" } ?? "")
        case .failure(let error): status = "could not be started: \(error)"
        }
        let (exit, calls, ready, channel) = state.withLock { state in
            var status = status
            // Past its memory limit, allocations fail and the Swift runtime (or the C library) says so
            // before it aborts.
            if case .success(.signaled) = outcome, state.allocationFailed {
                status = "out of memory (its limit is \(options.memoryBytes >> 20) MiB of address space): " + status
            }
            let exit = Exit(status: status, stoppedBecause: state.stopReason, stderr: state.stderr, at: Date())
            state.exit = exit
            let calls = state.calls
            state.calls = [:]
            return (exit, calls, state.ready.take(), state.channel)
        }
        writer.withLock { writer in
            if writer.descriptor >= 0 { close(writer.descriptor) }
            writer.descriptor = -1
        }
        channel?.close(promise: nil)
        let error = HostError.pluginCrashed(plugin: options.pluginID, why: exit.description)
        ready?.resume(throwing: error)
        for call in calls.values {
            if let entry = call.watchdogEntry { watchdog.remove(entry) }
            call.continuation.resume(throwing: error)
        }
        onExit(self, exit)
    }

    private func stateDescription() -> String {
        state.withLock { state in state.exit?.description ?? state.stopReason.map { "it is stopping: \($0)" } ?? "it is not running" }
    }

    /// A line with which the Swift runtime, Foundation or the C++ runtime reports a failed allocation.
    static func reportsAllocationFailure(_ line: String) -> Bool {
        ["failed to allocate", "Could not allocate memory", "std::bad_alloc", "Cannot allocate memory", "out of memory"].contains { line.contains($0) }
    }

    static let signalNames: [Int32: String] = [
        SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE",
        SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT",
    ]
}

/// Splits a worker's output into lines, keeping at most `limit` bytes of each: a plugin that writes
/// megabytes without a newline costs the host that much, not more.
struct OutputLines {
    var limit = 4096
    private var line: [UInt8] = []
    private var dropped = 0

    mutating func append(_ bytes: UnsafeRawBufferPointer, _ emit: (String) -> Void) {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                flush(emit)
            } else if line.count < limit {
                line.append(byte)
            } else {
                dropped += 1
            }
        }
    }

    /// Emits the line so far, if any: at a newline, and at the end of the stream (a last line without one).
    mutating func flush(_ emit: (String) -> Void) {
        guard !line.isEmpty || dropped > 0 else { return }
        var text = String(decoding: line, as: UTF8.self)
        if dropped > 0 { text += " … (\(dropped) more bytes)" }
        emit(text)
        line.removeAll(keepingCapacity: true)
        dropped = 0
    }
}

/// Delimits the worker's frames, refusing one over the limit before buffering it.
struct WorkerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = WorkerWire.Frame
    let limit: UInt32

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let frame = try buffer.readableBytesView.withUnsafeBytes { bytes -> (WorkerWire.Frame, Int)? in
            guard let length = try WorkerWire.frameLength(bytes, limit: limit), length <= bytes.count else { return nil }
            return (try WorkerWire.frame(UnsafeRawBufferPointer(rebasing: bytes[0..<length])), length)
        }
        guard let (decoded, length) = frame else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: length)
        context.fireChannelRead(wrapInboundOut(decoded))
        return .continue
    }
}

/// Hands decoded frames to the process; a malformed one, or the end of the stream, stops it.
final class WorkerChannelHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WorkerWire.Frame
    let process: WorkerProcess

    init(process: WorkerProcess) {
        self.process = process
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        process.received(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        process.stop(because: "it sent bytes that are not a frame: \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        process.ended()
    }
}
