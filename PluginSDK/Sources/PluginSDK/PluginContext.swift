/// Everything a plugin may reach during one call, bound to one workspace of one tenant and one plugin.
///
/// A context is an object capability: nothing reachable from it can name another workspace, and every
/// service checks the permissions the workspace's admin granted (``grants``) before it acts, throwing
/// ``PluginError/permissionDenied(_:)`` beyond them.
public protocol PluginContext: Sendable {
    /// The tenant that owns ``workspaceID``.
    var tenantID: String { get }
    /// The workspace this call belongs to.
    var workspaceID: String { get }
    /// The id of the plugin being called, as in its manifest.
    var pluginID: String { get }
    /// Who caused this call: the API token's subject and role for requests and for the `enabled` and
    /// `disabled` hooks (the admin who changed the enablement); subject `host` for events and shutdown.
    var caller: Caller { get }
    /// The permissions granted to this plugin in this workspace (a subset of those it requested).
    var grants: PermissionSet { get }
    /// This workspace's settings for the plugin, validated against the manifest's `config` schema with
    /// defaults applied.
    var config: [String: JSONValue] { get }
    /// Key-value storage private to this plugin in this workspace.
    var storage: any PluginStorage { get }
    /// Publishes events to the plugins enabled in this workspace.
    var events: any PluginEvents { get }
    /// A logger whose records carry `plugin.id`, `workspace.id` and, for requests, `request.id`.
    var logger: any PluginLogger { get }
}
