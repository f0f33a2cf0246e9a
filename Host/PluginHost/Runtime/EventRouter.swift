import PluginSDK

/// Which plugins an event goes to, and how: those enabled in its workspace that subscribe to its type
/// and hold a matching subscribe grant, each delivery bounded by the plugin's call limit.
struct EventRouter: Sendable {
    /// One delivery of an event to one subscribing plugin.
    struct Delivery: Sendable {
        var pluginID: String
        var runner: any RunningPlugin
        var policy: EventDeliveryPolicy
        var deliver: @Sendable () async throws -> Void
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

    /// The delivery of `event` to `pluginID`, if that plugin is enabled in the event's workspace,
    /// subscribes to its type and is granted to receive it; `nil` otherwise.
    func delivery(of event: PluginEvent, to pluginID: String) -> Delivery? {
        let target = registry.state.withLock { state -> (BoundPlugin, PluginManifest)? in
            let key = PluginRegistry.EnablementKey(workspaceID: event.workspaceID, pluginID: pluginID)
            guard let bound = state.enablements[key]?.bound, let plugin = state.plugins[pluginID] else { return nil }
            return (bound, plugin.record.manifest)
        }
        guard let (bound, manifest) = target, manifest.subscribes(to: event.type), bound.grants.allowsReceiving(event.type) else { return nil }
        let context = CallContext(bound: bound, caller: Self.hostCaller, requestID: nil)
        let runner = bound.runner
        // The manifest may ask for fewer attempts than the host's setting, never more.
        var policy = runner.eventDelivery
        if let attempts = manifest.delivery?.maxAttempts { policy.retry.maxAttempts = max(1, min(attempts, policy.retry.maxAttempts)) }
        return Delivery(pluginID: pluginID, runner: runner, policy: policy) { [watchdog] in
            try await watchdog.call(pluginID: pluginID, timeout: runner.callLimit, executor: bound.executor) {
                try await runner.handle(event: event, context: context)
            }
        }
    }

    static let hostCaller = Caller(subject: "host", role: .platformAdmin)
}
