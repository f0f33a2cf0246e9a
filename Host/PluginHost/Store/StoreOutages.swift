import Synchronization

/// When a plugin's storage (in one workspace, or in one call of `serve-plugin`) last met a store outage.
/// Plugins see an outage as ``PluginError/unavailable(_:)`` (the SDK's contract); when one passes that
/// error on, the host asks whether its storage met an outage during the call, and answers
/// ``HostError/storeUnavailable`` if it did. The record costs nothing on calls that succeed.
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
