import PluginSDK

/// A plugin whose library is loaded into this process: calls are direct, each bounded by the host's
/// plugin timeout through the ``CallWatchdog``, and a plugin granted storage runs on the store's
/// threads when the store has them (``HostStore/pluginExecutor``).
final class LibraryPlugin: RunningPlugin {
    let id: String
    let instance: any Plugin
    let callLimit: Duration
    let eventDelivery: EventDeliveryPolicy
    private let watchdog: CallWatchdog
    private let storeExecutor: (any TaskExecutor)?

    init(id: String, instance: any Plugin, timeout: Duration, eventRetry: HostConfiguration.RetryPolicy, watchdog: CallWatchdog, storeExecutor: (any TaskExecutor)?) {
        self.id = id
        self.instance = instance
        self.callLimit = timeout
        self.eventDelivery = EventDeliveryPolicy(retry: eventRetry)
        self.watchdog = watchdog
        self.storeExecutor = storeExecutor
    }

    var runStatus: RunStatus { RunStatus() }
    var plugin: (any Plugin)? { instance }

    func handle(_ request: PluginRequest, context: CallContext, started: ContinuousClock.Instant) async throws -> PluginResponse {
        try await watchdog.call(pluginID: id, timeout: callLimit, executor: context.bound.executor, started: started) { [instance] in
            try await instance.handle(request, context: context)
        }
    }

    func handle(events: [PluginEvent], context: CallContext) async throws {
        try await instance.handle(events: events, context: context)
    }

    func enabled(context: CallContext) async throws {
        try await instance.enabled(context: context)
    }

    func disabled(context: CallContext) async throws {
        try await instance.disabled(context: context)
    }

    func shutdown() async {
        await instance.shutdown()
    }

    func executor(for grants: PermissionSet) -> (any TaskExecutor)? {
        grants.permissions.isDisjoint(with: [.storageRead, .storageWrite]) ? nil : storeExecutor
    }
}
