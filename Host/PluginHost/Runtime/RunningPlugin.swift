import PluginSDK

/// A plugin the host runs, whatever runs it: ``LibraryPlugin`` calls a library loaded into this
/// process, ``RemotePlugin`` makes signed HTTP calls to a service. The registry, dispatch, event
/// routing and administration see only this protocol; nothing outside the two asks which one it has.
///
/// ``handle(_:context:)`` is bounded by the runner itself (an in-process call by the watchdog, a remote
/// call by its HTTP deadline). The hooks and event deliveries are bounded by their callers with
/// ``callLimit``.
protocol RunningPlugin: AnyObject, Sendable {
    var id: String { get }
    /// The longest one call into the plugin may take, the runner's own work included.
    var callLimit: Duration { get }
    /// How events are delivered to it.
    var eventDelivery: EventDeliveryPolicy { get }
    /// What `GET /v1/plugins/{id}` shows of how it runs.
    var runStatus: RunStatus { get }
    /// The plugin object, when this process holds it and it can be called directly (without the
    /// runner's time limit): what the benchmark of the dispatch path calls. `nil` for other runners.
    var plugin: (any Plugin)? { get }

    /// Answers a request within the plugin's time limit; a failure of the plugin's own is thrown as it
    /// came (a ``PluginError``, or anything it threw), a failure to reach it as a ``HostError``.
    /// `started` is when the host began the call, where its time limit counts from.
    func handle(_ request: PluginRequest, context: CallContext, started: ContinuousClock.Instant) async throws -> PluginResponse
    /// Delivers events of one workspace, in order, in one call (``Plugin/handle(events:context:)``).
    func handle(events: [PluginEvent], context: CallContext) async throws
    func enabled(context: CallContext) async throws
    func disabled(context: CallContext) async throws
    /// Makes it ready for calls before it is first needed (a worker process is started); a no-op for
    /// runners that are always ready.
    func start() async throws
    func shutdown() async
    /// Where the calls of an enablement with `grants` run; `nil`: Swift's default executor.
    func executor(for grants: PermissionSet) -> (any TaskExecutor)?
    /// Checks that the plugin can be reached, and records the outcome in ``runStatus``.
    func checkHealth() async
    /// An event delivery that was given up after its retries (it became a dead letter).
    func deliveryDropped(_ reason: String)
    /// Lets a quarantined plugin run again; whether it was quarantined.
    func liftQuarantine() -> Bool
}

extension RunningPlugin {
    var plugin: (any Plugin)? { nil }
    func executor(for grants: PermissionSet) -> (any TaskExecutor)? { nil }
    func checkHealth() async {}
    func deliveryDropped(_ reason: String) {}
    func liftQuarantine() -> Bool { false }
    func start() async throws {}
}

/// How a plugin's event deliveries are made.
struct EventDeliveryPolicy: Sendable {
    /// How failed deliveries are retried before they become dead letters.
    var retry: HostConfiguration.RetryPolicy
}

/// What the API shows of a plugin's runner beyond the manifest: a remote's health and circuit, a
/// worker's process, restarts and quarantine.
struct RunStatus: Sendable {
    var remote: RemotePlugin.Status?
    var worker: WorkerPlugin.Status?
}
