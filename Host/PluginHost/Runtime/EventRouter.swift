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

    func deliveries(of event: PluginEvent) -> [Delivery] {
        let targets = registry.state.withLock { state in
            state.enablements.compactMap { key, active -> (BoundPlugin, PluginManifest)? in
                guard key.workspaceID == event.workspaceID, let bound = active.bound, let plugin = state.plugins[key.pluginID] else { return nil }
                return (bound, plugin.record.manifest)
            }
        }
        return targets.compactMap { bound, manifest in
            guard manifest.subscribes(to: event.type), bound.grants.allowsReceiving(event.type) else { return nil }
            let context = CallContext(bound: bound, caller: Self.hostCaller, requestID: nil)
            let runner = bound.runner
            return Delivery(pluginID: bound.pluginID, runner: runner, policy: runner.eventDelivery) { [registry, watchdog] in
                // A retry after the plugin was disabled in the workspace has nothing to deliver to.
                guard registry.active(workspaceID: event.workspaceID, pluginID: bound.pluginID)?.bound != nil else { return }
                try await watchdog.call(pluginID: bound.pluginID, timeout: runner.callLimit, executor: bound.executor) {
                    try await runner.handle(event: event, context: context)
                }
            }
        }
    }

    static let hostCaller = Caller(subject: "host", role: .platformAdmin)
}
