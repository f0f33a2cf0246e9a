import PluginSDK

extension PluginRuntime {
    /// The context `pluginID` gets in `workspace` on a call by `caller`: services bound to that one
    /// workspace and checked against its grants. For embedding the runtime and for benchmarks of the
    /// SDK's services; plugins get theirs with each call.
    public func context(workspace: Workspace, pluginID: String, caller: Caller) throws -> any PluginContext {
        let key = EnablementKey(workspaceID: workspace.id, pluginID: pluginID)
        guard let active = state.withLock({ $0.enablements[key] }) else { throw HostError.pluginNotEnabled(pluginID, workspace: workspace.id) }
        guard let bound = active.bound else { throw HostError.pluginUnavailable(pluginID, "not loaded") }
        return CallContext(bound: bound, caller: caller, requestID: nil)
    }

    /// Where the calls of `pluginID` in `workspace` run: the store's threads for an in-process plugin
    /// granted storage (``HostStore/pluginExecutor``), `nil` for Swift's default executor. Code that
    /// uses a ``context(workspace:pluginID:caller:)`` as the plugin would runs there too.
    public func executor(workspace: Workspace, pluginID: String) -> (any TaskExecutor)? {
        state.withLock { $0.enablements[EnablementKey(workspaceID: workspace.id, pluginID: pluginID)]?.bound?.executor }
    }
}
