import Synchronization

/// When the store was last found unavailable by a plugin's storage call. Plugins see an outage as
/// ``PluginError/unavailable(_:)`` (the SDK's contract); when one passes that error on, the host asks
/// whether the store failed during the call, and answers ``HostError/storeUnavailable`` if it did. The
/// record costs nothing on calls that succeed.
final class StoreOutages: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    func record() {
        last.withLock { $0 = .now }
    }

    /// Whether an outage was recorded at or after `start`.
    func occurred(since start: ContinuousClock.Instant) -> Bool {
        last.withLock { $0.map { $0 >= start } ?? false }
    }
}
