import Foundation
import Synchronization

/// A bounded pool of libpq connections, each driven by a thread of its own, so blocking libpq calls never
/// run on an event loop or Swift's cooperative pool.
///
/// Callers queue work; an idle connection thread takes it. Statement groups that wait in the queue
/// together are sent together: one pipeline, one round trip, each group still its own transaction. So
/// under load a thread hop and a round trip serve several calls, and a failing group affects no other.
///
/// The pool is also a `TaskExecutor`: the runtime runs the code of plugins that use storage on its
/// threads (``HostStore/pluginExecutor``). A task waiting for its statements is resumed into this
/// pool's own queue, and a thread that has just finished a round trip runs it, so a storage call costs
/// no hop to Swift's cooperative pool and back. Task parts run before queued statements, which they add
/// to: the next batch then carries them. A plugin's own code thus runs on these threads between
/// statements. One that loops without suspending holds its thread, as it would hold a thread of the
/// cooperative pool (of which there are as many as cores); the other threads go on serving.
///
/// Each thread checks its connection before use: one the server closed (a restart) is replaced. While
/// the server is unreachable, work fails at once with a lost-connection error; nothing waits for it.
final class PostgresPool: TaskExecutor, Sendable {
    private enum Job {
        case statements([PostgresStatement], CheckedContinuation<[[PostgresRow]], any Error>)
        case exclusive(@Sendable (PostgresConnection) throws -> Void, CheckedContinuation<Void, any Error>)
        /// A part of a task that prefers this pool as its executor.
        case task(UnownedJob)
    }

    /// A first-in, first-out queue over an array: taking from the front moves an index, and the taken
    /// part is dropped once it is most of the array.
    private struct FIFO<Element> {
        private var items: [Element] = []
        private var head = 0

        var isEmpty: Bool { head == items.count }
        var first: Element? { isEmpty ? nil : items[head] }
        var remaining: ArraySlice<Element> { items[head...] }

        mutating func append(_ item: Element) { items.append(item) }

        mutating func popFirst() -> Element? {
            guard !isEmpty else { return nil }
            defer {
                head += 1
                if head == items.count {
                    items.removeAll(keepingCapacity: true)
                    head = 0
                } else if head > 64 && head * 2 > items.count {
                    items.removeFirst(head)
                    head = 0
                }
            }
            return items[head]
        }
    }

    private struct Queue {
        var jobs = FIFO<Job>()
        /// Task parts, run before statements: they add their statements to the next batch.
        var tasks = FIFO<UnownedJob>()
        var closed = false

        var isEmpty: Bool { jobs.isEmpty && tasks.isEmpty }

        mutating func append(_ job: Job) {
            if case .task(let task) = job { tasks.append(task) } else { jobs.append(job) }
        }

        /// Everything queued, emptying the queue.
        mutating func removeAll() -> [Job] {
            defer { (jobs, tasks) = (FIFO(), FIFO()) }
            return tasks.remaining.map(Job.task) + jobs.remaining
        }

        /// A task part; else an exclusive job; else up to `limit` statement groups in a row.
        mutating func take(upTo limit: Int) -> [Job] {
            if let task = tasks.popFirst() { return [.task(task)] }
            guard let first = jobs.popFirst() else { return [] }
            guard case .statements = first else { return [first] }
            var taken = [first]
            while taken.count < limit, case .statements? = jobs.first, let next = jobs.popFirst() {
                taken.append(next)
            }
            return taken
        }
    }

    let url: String
    let size: Int
    let statementTimeout: Duration
    /// Statement groups sent in one round trip at most.
    let batchLimit = 16
    private let queue = Mutex(Queue())
    private let wakeUp = NSCondition()
    private let stopped = Atomic<Int>(0)

    init(url: String, size: Int, statementTimeout: Duration) {
        self.url = url
        self.size = max(1, size)
        self.statementTimeout = statementTimeout
        for index in 0..<self.size {
            startNamedThread("pq-pool-\(index)") { [self] in drive() }
        }
    }

    /// Runs `statements` in one round trip as one transaction; their rows.
    func run(_ statements: [PostgresStatement]) async throws -> [[PostgresRow]] {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.statements(statements, continuation))
        }
    }

    /// Runs `body` with a connection to itself (migrations, checks), on a thread of the pool.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let result = Mutex<T?>(nil)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enqueue(.exclusive({ connection in
                let value = try body(connection)
                result.withLock { $0 = value }
            }, continuation))
        }
        return result.withLock { $0.take()! }
    }

    /// Runs a part of a task that prefers this executor on a thread of the pool.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if !tryEnqueue(.task(job)) { runAfterClose(job) }
    }

    /// A task part that arrives after ``close()`` still has to run, or its task would never finish: it
    /// runs on a Dispatch thread, where a storage call finds the pool closed and fails at once.
    private func runAfterClose(_ job: UnownedJob) {
        let executor = asUnownedTaskExecutor()
        DispatchQueue.global().async { job.runSynchronously(on: executor) }
    }

    /// Fails what is queued, lets the threads finish what they run, and closes the connections.
    func close() async {
        let abandoned = queue.withLock { queue -> [Job] in
            queue.closed = true
            return queue.removeAll()
        }
        for job in abandoned {
            if case .task(let task) = job { runAfterClose(task) } else { Self.fail(job, with: Self.closedError) }
        }
        wakeAll()
        // Wait until every thread has left, so no libpq call outlives the store. A libpq call ends within
        // the statement timeout; plugin code running on a thread may not end at all (a plugin looping
        // without suspending), and must not hold up shutdown: past that bound its thread is left behind,
        // and can make no libpq call, since the pool is closed.
        let bound = ContinuousClock.now + statementTimeout + .seconds(5)
        while stopped.load(ordering: .acquiring) < size, ContinuousClock.now < bound {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func wakeAll() {
        wakeUp.lock()
        wakeUp.broadcast()
        wakeUp.unlock()
    }

    private func enqueue(_ job: Job) {
        if !tryEnqueue(job) { Self.fail(job, with: Self.closedError) }
    }

    /// Queues `job` and wakes a thread; `false` once the pool is closed.
    private func tryEnqueue(_ job: Job) -> Bool {
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.closed else { return false }
            queue.append(job)
            return true
        }
        guard accepted else { return false }
        wakeUp.lock()
        wakeUp.signal()
        wakeUp.unlock()
        return true
    }

    /// One connection's thread: take queued work, run it, repeat until the pool closes.
    private func drive() {
        var connection: PostgresConnection?
        while true {
            var jobs = queue.withLock { $0.take(upTo: batchLimit) }
            if jobs.isEmpty {
                wakeUp.lock()
                while true {
                    let (taken, closed) = queue.withLock { ($0.take(upTo: batchLimit), $0.closed) }
                    if !taken.isEmpty || closed {
                        jobs = taken
                        break
                    }
                    wakeUp.wait()
                }
                wakeUp.unlock()
                if jobs.isEmpty { break }
            }
            // More is queued than one batch takes: let another thread look at the queue.
            if jobs.count == batchLimit, !queue.withLock({ $0.isEmpty }) {
                wakeUp.lock()
                wakeUp.signal()
                wakeUp.unlock()
            }
            if case .task(let task) = jobs[0] {
                task.runSynchronously(on: asUnownedTaskExecutor())
                continue
            }
            if let current = connection, !current.checkAlive() || !current.isReusable { connection = nil }
            if connection == nil {
                do {
                    connection = try PostgresConnection(url: url, statementTimeout: statementTimeout)
                } catch {
                    for job in jobs { Self.fail(job, with: error) }
                    continue
                }
            }
            run(jobs, on: connection!)
            if let current = connection, !current.isReusable { connection = nil }
        }
        connection = nil
        stopped.add(1, ordering: .releasing)
    }

    private func run(_ jobs: [Job], on connection: PostgresConnection) {
        if case .exclusive(let body, let continuation) = jobs[0] {
            continuation.resume(with: Result { try body(connection) })
            return
        }
        var groups: [[PostgresStatement]] = []
        var continuations: [CheckedContinuation<[[PostgresRow]], any Error>] = []
        for case .statements(let statements, let continuation) in jobs {
            groups.append(statements)
            continuations.append(continuation)
        }
        do {
            let outcomes = try connection.pipeline(batch: groups)
            for (continuation, outcome) in zip(continuations, outcomes) {
                continuation.resume(with: outcome.mapError { $0 as any Error })
            }
        } catch {
            for continuation in continuations { continuation.resume(throwing: error) }
        }
    }

    private static let closedError = PostgresError(message: "the connection pool is closed", connectionLost: true)

    private static func fail(_ job: Job, with error: any Error) {
        switch job {
        case .statements(_, let continuation): continuation.resume(throwing: error)
        case .exclusive(_, let continuation): continuation.resume(throwing: error)
        case .task: preconditionFailure("a task is run, never failed")
        }
    }
}
