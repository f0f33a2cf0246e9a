import Synchronization

/// Runs async critical sections one at a time, in arrival order. Used to serialise admin changes
/// (install, enable, ...) whose checks and writes span awaits; the request path never takes it.
final class AsyncMutex: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var completed: UInt64 = 0
    }
    private let state = Mutex(State())

    /// How many critical sections have ended: work that read something without the lock can tell, once
    /// it holds the lock, whether a section ended meanwhile (one that was running when it started
    /// reading counts too, since it ends later).
    var completed: UInt64 { state.withLock { $0.completed } }

    func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await lock()
        defer { unlock() }
        return try await body()
    }

    private func lock() async {
        await withCheckedContinuation { continuation in
            let acquired = state.withLock { state in
                if state.locked {
                    state.waiters.append(continuation)
                    return false
                }
                state.locked = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    private func unlock() {
        let next = state.withLock { state in
            state.completed += 1
            if state.waiters.isEmpty {
                state.locked = false
                return nil as CheckedContinuation<Void, Never>?
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
