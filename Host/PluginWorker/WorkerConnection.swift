import Foundation
import PluginHostFormats
import PluginSDK
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The worker's end of the socket pair (its standard input), and the one thread that serves it.
///
/// The thread is a run loop and the executor of every call: it reads what the host sent, starts each
/// call as a task that prefers this executor, runs the jobs those tasks make until none is left, writes
/// everything they sent in one go, and only then waits in `poll` for the next bytes. So a call costs the
/// worker no wake-up of another thread, and a burst of calls costs one read and one write, not one per
/// frame. A job enqueued from another thread (a timer firing, a task of the plugin's own) wakes the loop
/// through a pipe.
///
/// Calls therefore share one thread, as an event loop's do: a plugin that computes for long should do it
/// in a detached task, and a call that never suspends holds up the others until its time limit stops
/// the worker.
final class WorkerConnection: TaskExecutor, @unchecked Sendable {
    let descriptor: Int32
    /// Jobs to run, enqueued from any thread.
    private let jobs = Mutex<[UnownedJob]>([])
    /// A pipe written when a job is enqueued from another thread, which the loop may be waiting in `poll` for.
    private let wake: (read: Int32, write: Int32)
    private let loopThread = Mutex<pthread_t?>(nil)
    /// Frames sent on the loop thread, written when its jobs are done (owned by the loop thread).
    private var outbound: [UInt8] = []
    /// Held by whoever writes to the socket: the loop flushing `outbound`, or another thread's send.
    private let writeLock = Mutex(())
    /// The worker's own SDK calls awaiting the host's answer, by the worker's number for them.
    private let pending = Mutex<(next: UInt64, calls: [UInt64: CheckedContinuation<[UInt8], any Error>])>((1, [:]))

    /// Past this many buffered bytes the loop writes before running more jobs.
    private static let flushThreshold = 1 << 18

    init(descriptor: Int32) {
        self.descriptor = descriptor
        var pipe: [Int32] = [-1, -1]
        guard Glibc.pipe(&pipe) == 0 else { WorkerLog.fatal("no pipe to wake its loop: \(String(cString: strerror(errno)))") }
        for end in pipe {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        wake = (pipe[0], pipe[1])
    }

    private var onLoopThread: Bool {
        guard let loop = loopThread.withLock({ $0 }) else { return false }
        return pthread_equal(loop, pthread_self()) != 0
    }

    // MARK: Executor

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        if !onLoopThread {
            var one: UInt8 = 1
            _ = Glibc.write(wake.write, &one, 1)  // a full pipe wakes the loop as well
        }
    }

    /// Starts `body` as a task run by this loop.
    func spawn(_ body: sending @escaping @isolated(any) () async -> Void) {
        Task(executorPreference: self, operation: body)
    }

    // MARK: Writing

    /// Sends a whole frame: from the loop thread, with the others its jobs send (written once they are
    /// done); from any other thread, at once. A host that is gone ends the worker: nothing it does can
    /// reach anyone.
    func send(_ frame: [UInt8]) {
        if onLoopThread {
            outbound.append(contentsOf: frame)
            if outbound.count >= Self.flushThreshold { flush() }
        } else {
            writeLock.withLock { _ in writeAll(frame) }
        }
    }

    /// Writes what was sent, then ends the process: a frame still buffered (the reason a load failed,
    /// a log record of the plugin's `shutdown`) is not lost.
    func exit(_ status: Int32) -> Never {
        if onLoopThread { flush() }
        Glibc.exit(status)
    }

    /// Writes what the loop's jobs sent.
    private func flush() {
        guard !outbound.isEmpty else { return }
        writeLock.withLock { _ in writeAll(outbound) }
        outbound.removeAll(keepingCapacity: outbound.count <= 1 << 20)
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.send(descriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))  // a non-empty frame has a base address
                if written < 0 {
                    if errno == EINTR { continue }
                    _exit(0)
                }
                offset += written
            }
        }
    }

    // MARK: SDK calls

    /// Sends an SDK call made on behalf of the host's call `hostCall`, and waits for the host's answer.
    func sdk(_ call: WorkerWire.SDKCall, onBehalfOf hostCall: UInt64) async throws -> WorkerWire.SDKResult {
        let payload = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
            let number = pending.withLock { pending in
                let number = pending.next
                pending.next += 1
                pending.calls[number] = continuation
                return number
            }
            send(WorkerWire.encode(call, call: number, onBehalfOf: hostCall))
        }
        return try WorkerWire.sdkResult(payload)
    }

    /// The host's answer to the SDK call `number`; an answer to a call not made is ignored.
    func answer(_ number: UInt64, payload: [UInt8]) {
        pending.withLock { $0.calls.removeValue(forKey: number) }?.resume(returning: payload)
    }

    // MARK: The loop

    /// Runs the loop on the calling thread until the host closes its end: each frame read is handed to
    /// `handle`, and the jobs it starts run before the loop waits again.
    func run(limit: () -> UInt32, _ handle: (WorkerWire.Frame) -> Void) {
        loopThread.withLock { $0 = pthread_self() }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var descriptors = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        while true {
            runJobs()
            flush()
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                WorkerLog.fatal("poll failed: \(String(cString: strerror(errno)))")
            }
            if descriptors[1].revents != 0 {
                var drained = [UInt8](repeating: 0, count: 256)
                _ = drained.withUnsafeMutableBytes { Glibc.read(wake.read, $0.baseAddress, $0.count) }
            }
            guard descriptors[0].revents != 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { return }
            buffer.append(contentsOf: chunk[0..<count])
            var consumed = 0
            while true {
                let next: WorkerWire.Frame? = buffer.withUnsafeBytes { bytes in
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
                    do {
                        guard let length = try WorkerWire.frameLength(rest, limit: limit()), length <= rest.count else { return nil }
                        let frame = try WorkerWire.frame(UnsafeRawBufferPointer(rebasing: rest[0..<length]))
                        consumed += length
                        return frame
                    } catch {
                        WorkerLog.fatal("the host sent a malformed frame: \(error)")
                    }
                }
                guard let next else { break }
                handle(next)
            }
            if consumed > 0 { buffer.removeFirst(consumed) }
        }
    }

    /// Runs jobs until none is left, writing what was sent whenever one of them ran for long (so a call
    /// that computes does not hold back the answers of those that finished before it).
    private func runJobs() {
        let executor = asUnownedTaskExecutor()
        while true {
            let batch = jobs.withLock { jobs -> [UnownedJob] in
                defer { jobs.removeAll(keepingCapacity: true) }
                return jobs
            }
            guard !batch.isEmpty else { return }
            for job in batch {
                let started = ContinuousClock.now
                job.runSynchronously(on: executor)
                if !outbound.isEmpty, ContinuousClock.now - started > .milliseconds(1) { flush() }
            }
        }
    }
}

/// What the worker writes itself goes to its standard error, which the host logs with the plugin's id.
enum WorkerLog {
    static func line(_ message: String) {
        FileHandle.standardError.write(Data("plugin-host-worker: \(message)\n".utf8))
    }

    static func fatal(_ message: String) -> Never {
        line(message)
        exit(70)
    }
}
