/// Who caused a plugin call.
public struct Caller: Sendable, Hashable {
    /// The subject of the API token (a person or service name), or `host` for events and hooks.
    public var subject: String
    /// The token's role.
    public var role: CallerRole

    /// Creates a caller.
    public init(subject: String, role: CallerRole) {
        self.subject = subject
        self.role = role
    }
}

/// Roles of API tokens, from least to most powerful.
public enum CallerRole: String, Sendable, Hashable, Comparable, CaseIterable, Codable {
    /// May call plugins in the workspaces listed on its token.
    case member
    /// Administers one tenant: its workspaces, tokens and enablements.
    case tenantAdmin = "tenant-admin"
    /// Administers the host: installs plugins and creates tenants; may do everything.
    case platformAdmin = "platform-admin"

    private var rank: Int {
        switch self {
        case .member: 0
        case .tenantAdmin: 1
        case .platformAdmin: 2
        }
    }

    /// Orders roles by power.
    public static func < (lhs: CallerRole, rhs: CallerRole) -> Bool { lhs.rank < rhs.rank }
}
