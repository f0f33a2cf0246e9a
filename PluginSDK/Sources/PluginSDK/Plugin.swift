/// A plugin: the code a platform team ships as a shared library and the host calls.
///
/// The host makes one instance per process through ``PluginExport`` and calls it for every workspace the
/// plugin is enabled in; each call receives a ``PluginContext`` bound to exactly one workspace, so keep
/// workspace state in ``PluginContext/storage``, never in the instance.
///
/// Only ``handle(_:context:)`` is required; every other hook has a default that does nothing.
///
/// ```swift
/// final class HelloPlugin: Plugin {
///     init() {}
///     func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
///         .json(["hello": context.caller.subject])
///     }
/// }
/// ```
public protocol Plugin: AnyObject, Sendable {
    /// Answers a request routed to `/v1/workspaces/{ws}/plugins/{id}/resources/{path}`.
    ///
    /// Throw ``PluginError`` to choose the status the caller sees; any other error becomes a 500
    /// `PLUGIN_ERROR` without its description, which is logged instead.
    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse

    /// Receives an event that matches one of the manifest's `subscriptions`, published in the workspace
    /// of `context`. A thrown error makes the host retry the delivery a bounded number of times.
    func handle(event: PluginEvent, context: any PluginContext) async throws

    /// Receives the next events of the workspace for this plugin, in commit order (since SDK 1.3.0): one at a time unless
    /// the manifest asks for more with `delivery: {batchSize: N}`, up to N at a time when they are waiting.
    /// The host always calls this; the default hands each event to ``handle(event:context:)`` in turn.
    ///
    /// Override it to handle a run of events at once, for example to store an entry per event in one
    /// ``WriteBatch``: one commit instead of one per event. The call is one call for the host's time limit.
    /// A thrown error fails them all: the host then delivers those events again one at a time, so that
    /// one bad event is retried, and at last kept as a dead letter, alone. Any of them may therefore
    /// arrive more than once; use ``PluginEvent/id`` to drop repeats.
    func handle(events: [PluginEvent], context: any PluginContext) async throws

    /// Called once when a tenant admin enables the plugin in a workspace (and again when its grants or
    /// config change). Throwing refuses the enablement.
    func enabled(context: any PluginContext) async throws

    /// Called when a tenant admin disables the plugin in a workspace. Its stored data is kept.
    func disabled(context: any PluginContext) async throws

    /// Called once when the host shuts down, after in-flight requests have drained.
    func shutdown() async
}

extension Plugin {
    /// Ignores the event.
    public func handle(event: PluginEvent, context: any PluginContext) async throws {}
    /// Hands each event to ``handle(event:context:)``, in order, and stops at the first that throws.
    public func handle(events: [PluginEvent], context: any PluginContext) async throws {
        for event in events { try await handle(event: event, context: context) }
    }
    /// Does nothing.
    public func enabled(context: any PluginContext) async throws {}
    /// Does nothing.
    public func disabled(context: any PluginContext) async throws {}
    /// Does nothing.
    public func shutdown() async {}
}
