import ServiceLifecycle
import Synchronization

/// Deadlines of plugin calls, checked by one service every few milliseconds. Registering and clearing
/// a deadline is a dictionary update under a lock: no timer, no wake-up of another thread per call,
/// which a per-call event-loop timer costs on every request.
package final class CallWatchdog: Sendable {
    private struct State {
        var next: UInt64 = 0
        var entries: [UInt64: (deadline: ContinuousClock.Instant, expire: @Sendable () -> Void)] = [:]
    }
    private let state = Mutex(State())
    /// How often deadlines are checked; a timeout fires at most this much late.
    let resolution: Duration

    package init(resolution: Duration = .milliseconds(10)) {
        self.resolution = resolution
    }

    func add(deadline: ContinuousClock.Instant, expire: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { state in
            state.next += 1
            state.entries[state.next] = (deadline, expire)
            return state.next
        }
    }

    func remove(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Runs the expiry of every deadline that has passed.
    func expire(now: ContinuousClock.Instant) {
        let expired = state.withLock { state -> [@Sendable () -> Void] in
            let due = state.entries.filter { $0.value.deadline <= now }
            for id in due.keys { state.entries.removeValue(forKey: id) }
            return due.values.map(\.expire)
        }
        for expire in expired { expire() }
    }
}

/// Checks plugin call deadlines until shutdown; the host runs it as one of its services.
struct CallWatchdogService: Service {
    let watchdog: CallWatchdog

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: watchdog.resolution)
            watchdog.expire(now: .now)
        }
    }
}
