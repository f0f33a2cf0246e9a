import HTTPTypes
import PluginSDK

/// An error as the API answers it: a status, a stable code (openapi.yaml lists them), a message safe to
/// show the caller, and, where there are several problems, one detail per problem. This file is the one
/// place where what went wrong (``HostError``) becomes a status and a code.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var details: [String] = []
    /// For `VERSION_CONFLICT`: the key's current version, so a caller can retry its compare-and-set.
    var current: UInt64?
    /// For `VERSION_CONFLICT`: the key, which a write batch's caller needs to know.
    var key: String?

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, details: [String] = [], current: UInt64? = nil, key: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.current = current
        self.key = key
    }

    init(_ error: HostError) {
        switch error {
        case .invalidInput(let why):
            self.init(.badRequest, "BAD_REQUEST", why)
        case .unsupportedMediaType(let type):
            self.init(.unsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "send the manifest as application/yaml or application/json, not \(type)")
        case .bodyTooLarge(let limit):
            self.init(.contentTooLarge, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit of \(limit) bytes")
        case .malformedHTTP(let why):
            self.init(.badRequest, "MALFORMED_REQUEST", "the request is not valid HTTP/1.1 (\(why)); the connection is closed")
        case .bodyTimeout(let seconds):
            self.init(.requestTimeout, "REQUEST_TIMEOUT", "the request body did not arrive within \(seconds) s; the connection is closed")
        case .unauthenticated:
            self.init(.unauthorized, "UNAUTHORIZED", "send a valid API token as `Authorization: Bearer <token>`")
        case .sdkTokenMissing:
            self.init(.unauthorized, "UNAUTHORIZED", "send the call's SDK token (sdk.token of X-Plugin-Host-Context) as `Authorization: Bearer <token>`")
        case .sdkTokenInvalid:
            self.init(.unauthorized, "UNAUTHORIZED", "the SDK token is malformed or not signed by this host")
        case .sdkTokenExpired:
            self.init(.unauthorized, "TOKEN_EXPIRED", "the SDK token has expired; tokens live for one call")
        case .forbidden(let why):
            self.init(.forbidden, "FORBIDDEN", why)
        case .roleTooLow(let plugin, let method, let path, let needs):
            self.init(.forbidden, "FORBIDDEN", "\(method) \(path) of plugin \(plugin) needs the role \(needs.rawValue) or above")
        case .tenantNotFound(let id):
            self.init(.notFound, "TENANT_NOT_FOUND", "tenant \(id) not found")
        case .workspaceNotFound(let id):
            self.init(.notFound, "WORKSPACE_NOT_FOUND", "workspace \(id) not found")
        case .pluginNotFound(let id):
            self.init(.notFound, "PLUGIN_NOT_FOUND", "plugin \(id) is not installed on this host")
        case .tokenNotFound(let id, let tenant?):
            self.init(.notFound, "TOKEN_NOT_FOUND", "tenant \(tenant) has no token \(id)")
        case .tokenNotFound(let id, nil):
            self.init(.notFound, "TOKEN_NOT_FOUND", "there is no platform admin token \(id)")
        case .pluginNotEnabled(let plugin, let workspace):
            self.init(.notFound, "PLUGIN_NOT_ENABLED",
                      "plugin \(plugin) is not enabled in workspace \(workspace); a tenant admin enables it with PUT /v1/workspaces/\(workspace)/plugins/\(plugin)")
        case .routeNotFound(let plugin, let method, let path):
            self.init(.notFound, "ROUTE_NOT_FOUND", "plugin \(plugin) has no route for \(method) \(path): a plugin is reached only through the routes its manifest declares (routes: method, path), so declare it there and install that version")
        case .valueNotFound:
            self.init(.notFound, "NOT_FOUND", "no value is stored under that key")
        case .tenantExists(let id):
            self.init(.conflict, "TENANT_EXISTS", "tenant \(id) already exists")
        case .workspaceExists(let id):
            self.init(.conflict, "WORKSPACE_EXISTS", "workspace \(id) already exists")
        case .pluginInUse(let id, let workspaces):
            self.init(.conflict, "PLUGIN_IN_USE", "plugin \(id) is enabled in \(workspaces.count) workspace(s); disable it there first", details: workspaces)
        case .notARemotePlugin(let id):
            self.init(.conflict, "NOT_A_REMOTE_PLUGIN", "plugin \(id) runs in-process (runtime.kind: library) and has no install secret")
        case .lastPlatformToken(let id):
            self.init(.conflict, "LAST_PLATFORM_TOKEN", "\(id) is the last platform admin token; create another (POST /v1/tokens) before revoking it")
        case .idempotencyKeyInFlight:
            self.init(.conflict, "IDEMPOTENCY_KEY_IN_USE", error.description)
        case .idempotencyKeyReused:
            self.init(.unprocessableContent, "IDEMPOTENCY_KEY_REUSED", error.description)
        case .invalidBundle:
            self.init(.badRequest, "INVALID_BUNDLE", error.description)
        case .untrustedBundle:
            self.init(.badRequest, "UNTRUSTED_BUNDLE", error.description)
        case .invalidManifest(let problems):
            self.init(.badRequest, "INVALID_MANIFEST", "the manifest has \(problems.count) problem(s); nothing was installed", details: problems)
        case .runtimeKindChanged(let plugin, let installed, let manifest):
            self.init(.badRequest, "INVALID_MANIFEST", "the manifest changes the runtime kind of an installed plugin; nothing was installed", details: [
                "runtime.kind: \(plugin) is installed as \(installed); an upgrade cannot make it \(manifest), so uninstall it first",
            ])
        case .libraryNotLoaded(let why):
            self.init(.badRequest, "INVALID_MANIFEST", "the plugin library could not be loaded; nothing was installed", details: ["runtime.path: \(why)"])
        case .unknownPermissions(let grants):
            self.init(.badRequest, "INVALID_GRANT", "grants holds unknown permissions", details: grants.map { "grants: \"\($0)\" is not a permission" })
        case .permissionsNotRequested(let plugin, let requested, let asked):
            self.init(.badRequest, "GRANT_NOT_REQUESTED", "a plugin can only be granted what its manifest requests",
                      details: asked.map { "grants: \($0) is not requested by \(plugin) (it requests: \(requested.joined(separator: ", ")))" })
        case .invalidConfig(let problems):
            self.init(.badRequest, "INVALID_CONFIG", "config does not fit the plugin's schema", details: problems)
        case .remoteConfigTooLarge(let bytes, let limit):
            self.init(.badRequest, "INVALID_CONFIG", "config is too large for a remote plugin", details: [
                "config: \(bytes) bytes as JSON; a remote plugin's config travels in the X-Plugin-Host-Context header of every call, "
                    + "so it may be at most \(limit) bytes (keep large data in the plugin's storage)",
            ])
        case .pluginRefused(let error):
            self.init(HTTPResponse.Status(code: error.status), error.code, error.description, current: error.current, key: error.conflictingKey)
        case .pluginFailed(let plugin):
            self.init(.internalServerError, "PLUGIN_ERROR", "plugin \(plugin) failed while handling the request; the host logged the error")
        case .pluginUnreachable(let plugin, let why):
            self.init(.badGateway, "PLUGIN_BAD_GATEWAY", "remote plugin \(plugin) \(why)")
        case .hookRefused(let plugin, let hook, let status, let code, let message):
            let text = "remote plugin \(plugin) answered \(status) to the \(hook) call" + (code.map { ": \($0) \(message ?? "")" } ?? "")
            // A refusal (4xx) keeps its status and the remote's code; anything else is the remote failing.
            if (400..<500).contains(status) {
                self.init(HTTPResponse.Status(code: status), code ?? "PLUGIN_REFUSED", text)
            } else {
                self.init(.badGateway, "PLUGIN_BAD_GATEWAY", text)
            }
        case .pluginUnavailable(let plugin, let why):
            self.init(.serviceUnavailable, "PLUGIN_UNAVAILABLE", "plugin \(plugin) is unavailable: \(why)")
        case .installSecretMissing(let plugin):
            self.init(.serviceUnavailable, "PLUGIN_UNAVAILABLE",
                      "no install secret is stored for \(plugin); a platform admin makes one with POST /v1/plugins/\(plugin)/install-secret")
        case .enablementSecretMissing(let plugin, let workspace):
            self.init(.serviceUnavailable, "PLUGIN_UNAVAILABLE", "no enablement secret is stored for \(plugin) in workspace \(workspace); a tenant admin enables it again")
        case .pluginTimeout(let plugin, let after):
            self.init(.gatewayTimeout, "PLUGIN_TIMEOUT", "plugin \(plugin) did not answer within \(after)")
        case .responseTooLarge:
            self.init(.badGateway, "RESPONSE_TOO_LARGE", error.description)
        case .pluginCrashed(let plugin, let why):
            self.init(.badGateway, "PLUGIN_CRASHED", "the worker of plugin \(plugin) crashed during the call (\(why)); it is restarted")
        case .pluginQuarantined(let plugin, let why):
            self.init(.serviceUnavailable, "PLUGIN_QUARANTINED",
                      "plugin \(plugin) is quarantined (\(why)); a platform admin lifts it with DELETE /v1/plugins/\(plugin)/quarantine")
        case .hookFailed(let plugin, let hook, let cause):
            let mapped = APIError(cause)
            self.init(mapped.status, mapped.code, "the \(hook) hook of \(plugin) failed: \(mapped.message)", details: mapped.details, current: mapped.current, key: mapped.key)
        case .deadLetterNotFound(let id, let workspace):
            self.init(.notFound, "DEAD_LETTER_NOT_FOUND", "workspace \(workspace) has no dead letter \(id); list them with GET /v1/workspaces/\(workspace)/dead-letters")
        case .deadLetterNotWaiting(let id, let state, let action):
            self.init(.conflict, "DEAD_LETTER_NOT_WAITING", "dead letter \(id) is \(state), so it cannot be \(action); only a dead letter in state dead can")
        case .storeUnavailable:
            self.init(.serviceUnavailable, "STORE_UNAVAILABLE", "the host's store is unavailable; retry shortly")
        case .internalFailure:
            self.init(.internalServerError, "INTERNAL", "the host failed to handle the request; the error is logged under this request id")
        }
    }
}

extension PluginError {
    /// A version conflict's current version, which the API's error body carries.
    var current: UInt64? {
        if case .versionConflict(_, let current) = self { current } else { nil }
    }

    var conflictingKey: String? {
        if case .versionConflict(let key, _) = self { key } else { nil }
    }
}
