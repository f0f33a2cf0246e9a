import Synchronization

/// Runs async critical sections one at a time, in arrival order. Used to serialise admin changes
/// (install, enable, ...) whose checks and writes span awaits; the request path never takes it.
final class AsyncMutex: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var acquisitions: UInt64 = 0
    }
    private let state = Mutex(State())

    /// How many times the lock has been taken: work that read something without the lock can tell,
    /// once it holds the lock, whether anybody else held it meanwhile.
    var acquisitions: UInt64 { state.withLock { $0.acquisitions } }

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
                state.acquisitions += 1
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    private func unlock() {
        let next = state.withLock { state in
            if state.waiters.isEmpty {
                state.locked = false
                return nil as CheckedContinuation<Void, Never>?
            }
            state.acquisitions += 1
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
