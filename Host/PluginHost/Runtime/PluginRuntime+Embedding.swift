import PluginSDK

/// The runtime as a library: what another process embedding the host (and the benchmarks) calls,
/// without the HTTP layer. Each forwards to the part of the runtime that does it.
extension PluginRuntime {
    public func install(manifestText: String, baseDirectory: String) async throws -> PluginStatus {
        try await administration.install(manifestText: manifestText, baseDirectory: baseDirectory)
    }

    public func createTenant(id: String, name: String) async throws -> Tenant {
        try await administration.createTenant(id: id, name: name)
    }

    public func createWorkspace(id: String, name: String, tenantID: String) async throws -> Workspace {
        try await administration.createWorkspace(id: id, name: name, tenantID: tenantID)
    }

    public func enable(workspace: Workspace, pluginID: String, grants: [String], config: [String: JSONValue], caller: Caller) async throws -> Enablement {
        try await administration.enable(workspace: workspace, pluginID: pluginID, grants: grants, config: config, caller: caller)
    }

    public func plugins() -> [PluginStatus] { registry.plugins() }
    public func plugin(id: String) -> PluginStatus? { registry.plugin(id: id) }
    public func workspace(id: String) -> Workspace? { registry.workspace(id: id) }

    /// Runs a request through a plugin within its limit; every failure is a ``HostError``.
    public func handle(_ request: PluginRequest, workspace: Workspace, pluginID: String, caller: Caller) async throws -> PluginResponse {
        try await dispatcher.handle(request, workspace: workspace, pluginID: pluginID, caller: caller)
    }

    /// The dispatch path of a request up to the plugin's call (the enablement, the route and role, the
    /// context bound to the workspace), then the plugin itself when this process holds it, without its
    /// time limit: the benchmark measures this against a direct call of the plugin. Other runners are
    /// called as a request would call them.
    public func dispatch(_ request: PluginRequest, workspace: Workspace, pluginID: String, caller: Caller) async throws -> PluginResponse {
        let context = try dispatcher.prepare(workspace: workspace, pluginID: pluginID, method: request.method, path: request.path, caller: caller, requestID: request.requestID)
        if context.route != nil {
            let routed = Dispatcher.routed(request, context)
            guard let plugin = context.bound.plugin else { return try await context.bound.runner.handle(routed, context: context, started: .now) }
            return try await plugin.handle(routed, context: context)
        }
        guard let plugin = context.bound.plugin else { return try await context.bound.runner.handle(request, context: context, started: .now) }
        return try await plugin.handle(request, context: context)
    }

    /// The context `pluginID` gets in `workspace` on a call by `caller`: services bound to that one
    /// workspace and checked against its grants. For embedding the runtime and for benchmarks of the
    /// SDK's services; plugins get theirs with each call.
    public func context(workspace: Workspace, pluginID: String, caller: Caller) throws -> any PluginContext {
        guard let active = registry.active(workspaceID: workspace.id, pluginID: pluginID) else {
            throw HostError.pluginNotEnabled(plugin: pluginID, workspace: workspace.id)
        }
        guard let bound = active.bound else { throw HostError.pluginUnavailable(plugin: pluginID, why: "not loaded") }
        return CallContext(bound: bound, caller: caller, requestID: nil)
    }

    /// Where the calls of `pluginID` in `workspace` run: the store's threads for an in-process plugin
    /// granted storage (``HostStore/pluginExecutor``), `nil` for Swift's default executor. Code that
    /// uses a ``context(workspace:pluginID:caller:)`` as the plugin would runs there too.
    public func executor(workspace: Workspace, pluginID: String) -> (any TaskExecutor)? {
        registry.active(workspaceID: workspace.id, pluginID: pluginID)?.bound?.executor
    }
}
