import PluginSDK

/// Which plugins an event goes to, and how: those enabled in its workspace that subscribe to its type
/// and hold a matching subscribe grant, each delivery bounded by the plugin's call limit.
struct EventRouter: Sendable {
    /// A plugin enabled in a workspace that subscribes to events there: what a lane delivers to.
    struct Subscriber: Sendable {
        var pluginID: String
        var runner: any RunningPlugin
        var policy: EventDeliveryPolicy
        /// The most events one call receives (the manifest's `delivery.batchSize`, 1 by default).
        var batchSize: Int
        private let manifest: PluginManifest
        private let grants: PermissionSet
        private let send: @Sendable ([PluginEvent]) async throws -> Void

        init(
            pluginID: String, runner: any RunningPlugin, policy: EventDeliveryPolicy, batchSize: Int, manifest: PluginManifest, grants: PermissionSet,
            send: @escaping @Sendable ([PluginEvent]) async throws -> Void
        ) {
            self.pluginID = pluginID
            self.runner = runner
            self.policy = policy
            self.batchSize = batchSize
            self.manifest = manifest
            self.grants = grants
            self.send = send
        }

        /// Whether it receives events of `type`: it subscribes to the type and is granted to receive it.
        func accepts(_ type: String) -> Bool {
            manifest.subscribes(to: type) && grants.allowsReceiving(type)
        }

        /// Delivers `events` (all accepted, in order) in one call, within the plugin's call limit.
        func deliver(_ events: [PluginEvent]) async throws {
            try await send(events)
        }
    }

    let registry: PluginRegistry
    let watchdog: CallWatchdog

    /// The enablements whose plugin subscribes to some events: the lanes ``EventDelivery`` runs.
    func subscribingEnablements() -> Set<EventDelivery.LaneKey> {
        registry.state.withLock { state in
            Set(state.enablements.compactMap { key, active -> EventDelivery.LaneKey? in
                guard active.bound != nil, let plugin = state.plugins[key.pluginID], !plugin.record.manifest.subscriptions.isEmpty else { return nil }
                return EventDelivery.LaneKey(workspaceID: key.workspaceID, pluginID: key.pluginID)
            })
        }
    }

    /// `pluginID` as a subscriber in `workspaceID`, if it is enabled there; `nil` otherwise.
    func subscriber(_ pluginID: String, in workspaceID: String) -> Subscriber? {
        let target = registry.state.withLock { state -> (BoundPlugin, PluginManifest)? in
            let key = PluginRegistry.EnablementKey(workspaceID: workspaceID, pluginID: pluginID)
            guard let bound = state.enablements[key]?.bound, let plugin = state.plugins[pluginID] else { return nil }
            return (bound, plugin.record.manifest)
        }
        guard let (bound, manifest) = target else { return nil }
        let context = CallContext(bound: bound, caller: Self.hostCaller, requestID: nil)
        let runner = bound.runner
        // The manifest may ask for fewer attempts than the host's setting, never more.
        var policy = runner.eventDelivery
        if let attempts = manifest.delivery?.maxAttempts { policy.retry.maxAttempts = max(1, min(attempts, policy.retry.maxAttempts)) }
        let batchSize = manifest.runtime.kind == .remote ? 1 : max(1, manifest.delivery?.batchSize ?? 1)
        return Subscriber(pluginID: pluginID, runner: runner, policy: policy, batchSize: batchSize, manifest: manifest, grants: bound.grants) { [watchdog] events in
            try await watchdog.call(pluginID: pluginID, timeout: runner.callLimit, executor: bound.executor) {
                try await runner.handle(events: events, context: context)
            }
        }
    }

    static let hostCaller = Caller(subject: "host", role: .platformAdmin)
}
