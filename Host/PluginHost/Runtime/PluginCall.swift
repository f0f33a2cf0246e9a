import Synchronization

/// The outcome of one timeout-guarded plugin call, settled once by whichever comes first: the plugin's
/// answer or the watchdog's deadline. The caller either takes an answer that is already there or parks
/// a continuation that the first of the two resumes.
final class PluginCall<T: Sendable>: Sendable {
    private enum Phase {
        case running
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
        case settled
    }

    private struct State {
        var phase = Phase.running
        var deadline: UInt64?
    }

    private let state = Mutex(State())

    /// The plugin's answer; wakes the waiting caller and clears its deadline, or keeps the answer for
    /// ``takeResult()``. Ignored once the call has timed out.
    func finish(_ result: Result<T, any Error>, watchdog: CallWatchdog) {
        let (continuation, deadline) = state.withLock { state -> (CheckedContinuation<T, any Error>?, UInt64?) in
            switch state.phase {
            case .running:
                state.phase = .finished(result)
                return (nil, nil)
            case .waiting(let continuation):
                state.phase = .settled
                return (continuation, state.deadline)
            case .finished, .settled:
                return (nil, nil)
            }
        }
        if let deadline { watchdog.remove(deadline) }
        continuation?.resume(with: result)
    }

    /// The outcome if the call is already settled and nobody waits for it.
    func takeResult() -> Result<T, any Error>? {
        state.withLock { state in
            guard case .finished = state.phase else { return nil }
            // Moved out, not copied: the answer is released once, by the caller.
            var phase = Phase.settled
            swap(&phase, &state.phase)
            guard case .finished(let result) = consume phase else { return nil }
            return result
        }
    }

    /// Parks the caller until the answer or the expiry of `deadline`, its entry in `watchdog`.
    func wait(_ continuation: CheckedContinuation<T, any Error>, deadline: UInt64, watchdog: CallWatchdog) {
        let ready = state.withLock { state -> Result<T, any Error>? in
            switch state.phase {
            case .running:
                state.phase = .waiting(continuation)
                state.deadline = deadline
                return nil
            case .finished(let result):
                state.phase = .settled
                return result
            case .waiting, .settled:
                preconditionFailure("a plugin call is awaited once")
            }
        }
        if let ready {
            watchdog.remove(deadline)
            continuation.resume(with: ready)
        }
    }

    /// Settles the call with `error` unless the plugin has answered; true when it did, and the plugin's
    /// task should be cancelled.
    func expire(_ error: any Error) -> Bool {
        let (expired, continuation) = state.withLock { state -> (Bool, CheckedContinuation<T, any Error>?) in
            switch state.phase {
            case .running:
                state.phase = .finished(.failure(error))
                return (true, nil)
            case .waiting(let continuation):
                state.phase = .settled
                return (true, continuation)
            case .finished, .settled:
                return (false, nil)
            }
        }
        continuation?.resume(throwing: error)
        return expired
    }
}

extension CallWatchdog {
    /// Runs plugin code on a task of its own so that a plugin ignoring cancellation cannot hold the
    /// caller past the timeout: the caller gets ``HostError/pluginTimeout(plugin:after:)`` and the
    /// abandoned task is cancelled. The deadline is kept by this watchdog, so a call costs no timer of
    /// its own.
    ///
    /// The task starts immediately, so a plugin that answers without suspending has run to its end when
    /// `Task.immediate` returns; its answer is taken from there, with no deadline registered and no
    /// continuation, which would suspend the caller and enqueue it again. Only a call still running then
    /// registers its deadline (counted from the call's start) and waits. With an `executor` (the store's
    /// threads, for a plugin granted storage), the task starts there instead and the caller waits.
    func call<T: Sendable>(
        pluginID: String, timeout: Duration, executor: (any TaskExecutor)? = nil, started: ContinuousClock.Instant = .now,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let call = PluginCall<T>()
        let run: @Sendable () async -> Void = { [self] in
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            call.finish(result, watchdog: self)
        }
        let task = executor.map { Task(executorPreference: $0, operation: run) } ?? Task.immediate(operation: run)
        if let result = call.takeResult() { return try result.get() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let deadline = add(deadline: started + timeout) {
                    if call.expire(HostError.pluginTimeout(plugin: pluginID, after: timeout)) { task.cancel() }
                }
                call.wait(continuation, deadline: deadline, watchdog: self)
            }
        } onCancel: {
            task.cancel()
        }
    }
}
