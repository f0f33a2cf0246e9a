import Foundation
import NIOPosix
import Synchronization

/// A bounded pool of libpq connections and a thread pool of the same size that runs every libpq call,
/// so blocking I/O never touches an event loop or Swift's cooperative pool.
///
/// Connections open lazily and are checked before reuse: one that the server closed (a restart) is
/// replaced, and with it every idle sibling, which the same restart has made stale. While the server is
/// unreachable each call fails at once with ``StoreError/unavailable(_:)``; nothing queues behind it.
final class PostgresPool: Sendable {
    private struct State {
        var idle: [PostgresConnection] = []
        /// Connections out on lease or being opened.
        var leased = 0
        var waiters: [CheckedContinuation<PostgresConnection?, any Error>] = []
        var closed = false
    }

    let url: String
    let size: Int
    let statementTimeout: Duration
    private let state = Mutex(State())
    private let threadPool: NIOThreadPool

    init(url: String, size: Int, statementTimeout: Duration) {
        self.url = url
        self.size = max(1, size)
        self.statementTimeout = statementTimeout
        self.threadPool = NIOThreadPool(numberOfThreads: max(1, size))
        threadPool.start()
    }

    /// Runs `body` with a connection of its own, on a thread of the pool.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let reused = try await acquire()
        do {
            return try await threadPool.runIfActive { [self] in
                let connection: PostgresConnection
                if let reused, reused.checkAlive() {
                    connection = reused
                } else {
                    if reused != nil { dropIdle() }
                    do {
                        connection = try PostgresConnection(url: url, statementTimeout: statementTimeout)
                    } catch {
                        release(nil)
                        throw error
                    }
                }
                do {
                    let value = try body(connection)
                    release(connection)
                    return value
                } catch {
                    release(connection)
                    throw error
                }
            }
        } catch let error as PostgresError {
            throw error
        } catch {
            // The thread pool is shut down: the host is stopping.
            throw PostgresError(message: "the connection pool is closed", connectionLost: true)
        }
    }

    /// Closes idle connections, fails waiters and stops the threads. Leases in flight finish first.
    func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer { state.idle = []; state.waiters = [] }
            return (state.idle, state.waiters)
        }
        for waiter in waiters { waiter.resume(throwing: PostgresError(message: "the connection pool is closed", connectionLost: true)) }
        try? await threadPool.shutdownGracefully()
        _ = idle
    }

    /// A connection to reuse, or `nil` with the right to open one.
    private func acquire() async throws -> PostgresConnection? {
        enum Decision { case reuse(PostgresConnection), open, closed, wait }
        let decision = state.withLock { state -> Decision in
            if state.closed { return .closed }
            if let connection = state.idle.popLast() {
                state.leased += 1
                return .reuse(connection)
            }
            if state.leased < size {
                state.leased += 1
                return .open
            }
            return .wait
        }
        switch decision {
        case .reuse(let connection): return connection
        case .open: return nil
        case .closed: throw PostgresError(message: "the connection pool is closed", connectionLost: true)
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let rejected = state.withLock { state -> Bool in
                    if state.closed { return true }
                    // A lease may have ended between the two locks.
                    if let connection = state.idle.popLast() {
                        state.leased += 1
                        continuation.resume(returning: connection)
                    } else if state.leased < size {
                        state.leased += 1
                        continuation.resume(returning: nil)
                    } else {
                        state.waiters.append(continuation)
                    }
                    return false
                }
                if rejected { continuation.resume(throwing: PostgresError(message: "the connection pool is closed", connectionLost: true)) }
            }
        }
    }

    /// Ends a lease: a reusable connection goes to the next waiter or the idle list; anything else is
    /// closed and its slot handed on.
    private func release(_ connection: PostgresConnection?) {
        let keep = connection.flatMap { $0.isReusable ? $0 : nil }
        let waiter = state.withLock { state -> CheckedContinuation<PostgresConnection?, any Error>? in
            if !state.waiters.isEmpty && !state.closed {
                return state.waiters.removeFirst()
            }
            state.leased -= 1
            if let keep, !state.closed { state.idle.append(keep) }
            return nil
        }
        waiter?.resume(returning: keep)
    }

    private func dropIdle() {
        let stale = state.withLock { state in
            defer { state.idle = [] }
            return state.idle
        }
        _ = stale
    }
}
