/// Errors with a meaning the host understands, thrown by the host's services or by plugins.
///
/// When a plugin's request handler throws one of these, the caller sees its status and code; any other
/// error becomes 500 `PLUGIN_ERROR`.
public enum PluginError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The call needs a permission this workspace did not grant. Status 403, code `PERMISSION_DENIED`.
    case permissionDenied(Permission)
    /// A compare-and-set found another version. Status 409, code `VERSION_CONFLICT`.
    case versionConflict(key: String, current: UInt64)
    /// The request is malformed. Status 400, code `BAD_REQUEST`.
    case badRequest(String)
    /// The addressed thing does not exist. Status 404, code `NOT_FOUND`.
    case notFound(String)
    /// A key or value is outside the host's limits. Status 413, code `VALUE_TOO_LARGE`.
    case limitExceeded(String)
    /// The host could not complete the call (storage unavailable, shutting down). Status 503, code `HOST_UNAVAILABLE`.
    case unavailable(String)

    /// The HTTP status the caller sees.
    public var status: Int {
        switch self {
        case .permissionDenied: 403
        case .versionConflict: 409
        case .badRequest: 400
        case .notFound: 404
        case .limitExceeded: 413
        case .unavailable: 503
        }
    }

    /// The stable error code the caller sees.
    public var code: String {
        switch self {
        case .permissionDenied: "PERMISSION_DENIED"
        case .versionConflict: "VERSION_CONFLICT"
        case .badRequest: "BAD_REQUEST"
        case .notFound: "NOT_FOUND"
        case .limitExceeded: "VALUE_TOO_LARGE"
        case .unavailable: "HOST_UNAVAILABLE"
        }
    }

    /// A message for the caller.
    public var description: String {
        switch self {
        case .permissionDenied(let permission):
            "the plugin is not granted \(permission) in this workspace: its manifest must request it under permissions, and a tenant admin must grant it (plugin-host enable WORKSPACE PLUGIN --grant \(permission))"
        case .versionConflict(let key, let current): "key \(key) is at version \(current), not the expected one"
        case .badRequest(let reason): reason
        case .notFound(let what): "\(what) not found"
        case .limitExceeded(let reason): reason
        case .unavailable(let reason): reason
        }
    }
}
