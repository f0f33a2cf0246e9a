import Foundation
import PluginSDK

/// Where every publish goes: each event is a row in the store before `publish` returns (the outbox),
/// and the lanes of its workspace are woken to deliver it (``EventDelivery``).
final class EventOutbox: Sendable {
    let store: any HostStore
    let wakeups: EventWakeups
    let metrics: HostMetrics

    init(store: any HostStore, wakeups: EventWakeups, metrics: HostMetrics) {
        self.store = store
        self.wakeups = wakeups
        self.metrics = metrics
    }

    /// Stores `event` (in its workspace, as `event.sourcePluginID`), then wakes its subscribers.
    func publish(_ event: PluginEvent) async throws {
        _ = try await store.commit(StorageScope(workspaceID: event.workspaceID, pluginID: event.sourcePluginID), writes: [], events: [event])
        committed(workspaceID: event.workspaceID, count: 1)
    }

    /// `count` events of the workspace were committed (alone or with a write batch).
    func committed(workspaceID: String, count: Int) {
        guard count > 0 else { return }
        metrics.recordPublished(workspaceID: workspaceID, count: count)
        wakeups.wake(workspaceID: workspaceID)
    }
}
