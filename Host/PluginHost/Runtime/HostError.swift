import PluginSDK

/// An error the API answers with a status, a stable code and a message safe to show the caller.
///
/// The codes are part of the API (see openapi.yaml); messages may change.
public struct HostError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    /// Itemised problems, for example every problem of a manifest.
    public var details: [String]
    /// For `VERSION_CONFLICT`: the key's current version, so a caller can retry its compare-and-set.
    public var current: UInt64?

    public init(_ status: Int, _ code: String, _ message: String, details: [String] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    static func unauthorized() -> HostError {
        HostError(401, "UNAUTHORIZED", "send a valid API token as `Authorization: Bearer <token>`")
    }
    static func forbidden(_ why: String) -> HostError { HostError(403, "FORBIDDEN", why) }
    static func badRequest(_ why: String) -> HostError { HostError(400, "BAD_REQUEST", why) }
    static func tenantNotFound(_ id: String) -> HostError { HostError(404, "TENANT_NOT_FOUND", "tenant \(id) not found") }
    static func workspaceNotFound(_ id: String) -> HostError { HostError(404, "WORKSPACE_NOT_FOUND", "workspace \(id) not found") }
    static func pluginNotFound(_ id: String) -> HostError {
        HostError(404, "PLUGIN_NOT_FOUND", "plugin \(id) is not installed on this host")
    }
    static func pluginNotEnabled(_ id: String, workspace: String) -> HostError {
        HostError(404, "PLUGIN_NOT_ENABLED", "plugin \(id) is not enabled in workspace \(workspace); a tenant admin enables it with PUT /v1/workspaces/\(workspace)/plugins/\(id)")
    }
    static func pluginError(_ id: String) -> HostError {
        HostError(500, "PLUGIN_ERROR", "plugin \(id) failed while handling the request; the host logged the error")
    }
    static func pluginTimeout(_ id: String, after timeout: Duration) -> HostError {
        HostError(504, "PLUGIN_TIMEOUT", "plugin \(id) did not answer within \(timeout)")
    }
    static func pluginUnavailable(_ id: String, _ why: String) -> HostError {
        HostError(503, "PLUGIN_UNAVAILABLE", "plugin \(id) is unavailable: \(why)")
    }
    static func bodyTooLarge(limit: Int) -> HostError {
        HostError(413, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit of \(limit) bytes")
    }
    static func storeUnavailable() -> HostError {
        HostError(503, "STORE_UNAVAILABLE", "the host's store is unavailable; retry shortly")
    }

    /// What a plugin's thrown (or passed on) ``PluginError`` means for the caller: its status and code,
    /// the store's outage as `STORE_UNAVAILABLE`, a version conflict with the current version. The one
    /// mapping for in-process plugins, the SDK over HTTP and `serve-plugin`.
    static func from(_ error: PluginError) -> HostError {
        if error == ScopedStorage.unavailable { return storeUnavailable() }
        var mapped = HostError(error.status, error.code, error.description)
        if case .versionConflict(_, let current) = error { mapped.current = current }
        return mapped
    }
}
