import PluginSDK

/// The authenticated caller of an API request.
public struct Principal: Sendable, Hashable {
    public var tokenID: String
    public var subject: String
    public var role: CallerRole
    /// `nil` for platform admins.
    public var tenantID: String?
    /// For members: the workspaces they may use.
    public var workspaces: Set<String>

    public var caller: Caller { Caller(subject: subject, role: role) }

    /// Whether this principal administers `tenantID`.
    public func administers(tenantID: String) -> Bool {
        role == .platformAdmin || (role == .tenantAdmin && self.tenantID == tenantID)
    }

    /// Whether this principal may use `workspace` at all (as member or admin).
    public func canUse(_ workspace: Workspace) -> Bool {
        switch role {
        case .platformAdmin: true
        case .tenantAdmin: tenantID == workspace.tenantID
        case .member: tenantID == workspace.tenantID && workspaces.contains(workspace.id)
        }
    }
}
