import Synchronization

/// Wakes the delivery lanes of a workspace when events were committed there: by this host at once, by
/// another host sharing a PostgreSQL database through its notification. A lane that misses a wake-up
/// still polls.
final class EventWakeups: Sendable {
    private let signals = Mutex<[String: [ObjectIdentifier: LaneSignal]]>([:])
    /// Whether other hosts share the store, and are to be told of this host's commits.
    private let shared: Bool
    /// Workspaces with commits the other hosts have not been told of yet.
    private let unannounced = Mutex<Set<String>>([])
    /// Yields when there are some.
    let announcements: AsyncStream<Void>
    private let announce: AsyncStream<Void>.Continuation

    init(shared: Bool) {
        self.shared = shared
        (announcements, announce) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The signal a lane of `workspaceID` waits on, until ``remove(_:workspaceID:)``.
    func signal(workspaceID: String) -> LaneSignal {
        let signal = LaneSignal()
        signals.withLock { $0[workspaceID, default: [:]][ObjectIdentifier(signal)] = signal }
        return signal
    }

    func remove(_ signal: LaneSignal, workspaceID: String) {
        signals.withLock { signals in
            signals[workspaceID]?[ObjectIdentifier(signal)] = nil
            if signals[workspaceID]?.isEmpty == true { signals[workspaceID] = nil }
        }
    }

    /// Wakes this host's lanes of the workspace, and tells the other hosts.
    func wake(workspaceID: String) {
        wakeHere(workspaceID: workspaceID)
        guard shared else { return }
        unannounced.withLock { _ = $0.insert(workspaceID) }
        announce.yield()
    }

    /// The workspaces to tell the other hosts of now.
    func takeUnannounced() -> [String] {
        unannounced.withLock { unannounced in
            defer { unannounced = [] }
            return Array(unannounced)
        }
    }

    func finishAnnouncements() {
        announce.finish()
    }

    /// Wakes this host's lanes of the workspace only (another host told us).
    func wakeHere(workspaceID: String) {
        for signal in signals.withLock({ Array(($0[workspaceID] ?? [:]).values) }) { signal.fire() }
    }

    /// Wakes every lane of this host (notifications may have been missed).
    func wakeAll() {
        for signal in signals.withLock({ $0.values.flatMap(\.values) }) { signal.fire() }
    }

    /// Asks this host's lanes of the workspace to replay their dead letters now (lanes on other hosts
    /// look for replays every few seconds).
    func requestReplay(workspaceID: String) {
        for signal in signals.withLock({ Array(($0[workspaceID] ?? [:]).values) }) { signal.requestReplay() }
    }

}

/// One lane's wake-up: a fire while the lane works is kept, so the next wait returns at once.
final class LaneSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    private let replay = Atomic<Bool>(true)

    func requestReplay() {
        replay.store(true, ordering: .relaxed)
        fire()
    }

    /// Whether a replay was asked for since the last call.
    func takeReplayRequest() -> Bool {
        replay.exchange(false, ordering: .relaxed)
    }

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns when fired (or fired since the last wait), after `timeout`, or when the task is cancelled.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                do { try await Task.sleep(for: timeout) } catch { return }
                // As a fire, so that a wait not yet registered returns at once.
                fire()
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if state.pending {
                            state.pending = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                fire()
            }
            group.cancelAll()
        }
    }
}
