import PluginSDK

/// What an SDK token reaches: the services of its plugin's enablement in its workspace, with the
/// token's grants narrowed to what the enablement grants now.
struct SDKBinding: Sendable {
    var claims: SDKToken.Claims
    var tenantID: String
    var workspaceID: String
    var pluginID: String
    var grants: PermissionSet
    var config: [String: JSONValue]
    var storage: ScopedStorage
    var events: ScopedEvents
}

extension PluginRegistry {
    /// Binds an SDK token to the enablement it names, now: a disabled plugin is not enabled any more,
    /// and the grants are those of the token that the enablement still grants. During an `enabled`
    /// hook, the enablement being made is the one reached.
    func sdkBinding(_ claims: SDKToken.Claims) throws(HostError) -> SDKBinding {
        let key = EnablementKey(workspaceID: claims.workspace, pluginID: claims.plugin)
        guard let active = state.withLock({ $0.enabling[key] ?? $0.enablements[key] }), let bound = active.bound, bound.tenantID == claims.tenant else { throw .pluginNotEnabled(plugin: claims.plugin, workspace: claims.workspace) }
        let grants = PermissionSet(claims.grants.compactMap(Permission.init).filter(bound.grants.contains))
        return SDKBinding(
            claims: claims, tenantID: bound.tenantID, workspaceID: bound.workspaceID, pluginID: bound.pluginID, grants: grants, config: bound.config,
            storage: bound.storage.narrowed(to: grants), events: bound.events.narrowed(to: grants)
        )
    }
}
