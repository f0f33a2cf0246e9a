import Synchronization

/// One remote's circuit breaker: after `threshold` failures in a row calls are refused at once; after
/// `cooldown` one call goes through as a probe, and its outcome closes or re-opens the circuit.
final class CircuitBreaker: Sendable {
    enum Position: String, Sendable {
        case closed, open
        case halfOpen = "half-open"
    }

    enum Decision: Equatable {
        case allowed
        /// Refused; the circuit may let a probe through after this long.
        case refused(retryAfter: Duration)
    }

    private struct State {
        var failures = 0
        var openedAt: ContinuousClock.Instant?
        var probing = false
    }

    let threshold: Int
    let cooldown: Duration
    private let state = Mutex(State())

    init(threshold: Int, cooldown: Duration) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
    }

    var position: Position {
        state.withLock { state in
            guard let openedAt = state.openedAt else { return .closed }
            return state.probing || ContinuousClock.now - openedAt >= cooldown ? .halfOpen : .open
        }
    }

    var consecutiveFailures: Int { state.withLock { $0.failures } }

    /// Whether a call may go out now; a call allowed on an open circuit is its probe.
    func allow() -> Decision {
        state.withLock { state in
            guard let openedAt = state.openedAt else { return .allowed }
            let waited = ContinuousClock.now - openedAt
            guard waited >= cooldown, !state.probing else { return .refused(retryAfter: max(.zero, cooldown - waited)) }
            state.probing = true
            return .allowed
        }
    }

    func succeeded() {
        state.withLock { $0 = State() }
    }

    func failed() {
        state.withLock { state in
            state.failures += 1
            if state.probing || (state.openedAt == nil && state.failures >= threshold) {
                state.openedAt = .now
                state.probing = false
            }
        }
    }

    /// A call ended for a reason that is not the remote's (the host's store, a missing secret, a
    /// cancelled caller): a probe slot it held is given back, nothing is counted.
    func released() {
        state.withLock { $0.probing = false }
    }

    /// A health check passed: closes an open circuit whose cool-down is over.
    func healthy() {
        state.withLock { state in
            if let openedAt = state.openedAt, ContinuousClock.now - openedAt >= cooldown, !state.probing { state = State() }
        }
    }
}
