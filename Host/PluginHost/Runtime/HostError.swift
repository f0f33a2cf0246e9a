import PluginSDK

/// What went wrong, in the host's own terms: what was asked for and why it could not be done. The
/// runtime, the stores, the loader and the remote client throw it; `HTTP/APIError.swift` is the one
/// place that turns it into a status, a stable code and a message for the caller.
public indirect enum HostError: Error, Sendable, Equatable, CustomStringConvertible {
    // The request itself.
    /// A value the caller sent is not acceptable; the text says which and why.
    case invalidInput(String)
    case unsupportedMediaType(String)
    case bodyTooLarge(limit: Int)
    /// The request is not valid HTTP/1.1; the text is the parser's.
    case malformedHTTP(String)
    case bodyTimeout(seconds: Int64)

    // Who calls.
    /// No API token, an unknown one, or a revoked one.
    case unauthenticated
    /// An `/sdk/v1` call without an SDK token.
    case sdkTokenMissing
    /// An SDK token that is malformed, altered or signed by another key.
    case sdkTokenInvalid
    case sdkTokenExpired
    /// The caller's role or workspaces do not allow it; the text says what is needed.
    case forbidden(String)
    /// A manifest route needs a higher role than the caller's.
    case roleTooLow(plugin: String, method: String, path: String, needs: CallerRole)

    // What is not there.
    case tenantNotFound(String)
    case workspaceNotFound(String)
    case pluginNotFound(String)
    /// `tenant` is `nil` for a platform admin token.
    case tokenNotFound(String, tenant: String?)
    case pluginNotEnabled(plugin: String, workspace: String)
    case routeNotFound(plugin: String, method: String, path: String)
    /// No value is stored under the key an SDK call named.
    case valueNotFound
    case deadLetterNotFound(id: String, workspace: String)
    /// A dead letter already replayed, being replayed, or discarded.
    case deadLetterNotWaiting(id: String, state: String, action: String)

    // What is in the way.
    case tenantExists(String)
    case workspaceExists(String)
    case pluginInUse(String, workspaces: [String])
    case notARemotePlugin(String)
    case lastPlatformToken(String)

    // Manifests, grants and config.
    /// Every problem of a manifest; nothing was installed.
    case invalidManifest(problems: [String])
    /// A request repeating an `Idempotency-Key` whose first request is still running.
    case idempotencyKeyInFlight(String)
    /// An `Idempotency-Key` used again for another request (another method, path, query or body).
    case idempotencyKeyReused(String)
    /// A plugin bundle that is not one, is damaged or changed, or whose copy on this host was changed.
    case invalidBundle(String)
    /// A bundle whose signature is wrong, by a key this host does not trust, or missing where required.
    case untrustedBundle(String)
    case runtimeKindChanged(plugin: String, installed: String, manifest: String)
    /// The library passed its checks but `dlopen` or its entry failed; nothing was installed.
    case libraryNotLoaded(String)
    case unknownPermissions([String])
    case permissionsNotRequested(plugin: String, requested: [String], asked: [String])
    case invalidConfig([String])
    case remoteConfigTooLarge(bytes: Int, limit: Int)

    // Plugins.
    /// A plugin's own ``PluginError``, passed on: its status and code are the SDK's.
    case pluginRefused(PluginError)
    /// The plugin threw something other than a ``PluginError``, or answered an invalid status; the
    /// details are logged, not shown.
    case pluginFailed(String)
    /// A remote plugin could not be reached, or answered something that is not an answer.
    case pluginUnreachable(plugin: String, why: String)
    /// A remote plugin's hook answered with an error status (its code, if its body had one).
    case hookRefused(plugin: String, hook: String, status: Int, code: String?, message: String?)
    case pluginUnavailable(plugin: String, why: String)
    /// A remote plugin's install secret is not in the store (it is needed for `enabled` calls).
    case installSecretMissing(plugin: String)
    /// A remote plugin's secret for a workspace is not in the store.
    case enablementSecretMissing(plugin: String, workspace: String)
    case pluginTimeout(plugin: String, after: Duration)
    /// The plugin answered a body over the host's limit (`bytes` nil: more than the limit, not read further).
    case responseTooLarge(plugin: String, bytes: Int?, limit: Int)
    /// A library plugin's worker process ended while it had the call; `why` says how (its exit or signal).
    case pluginCrashed(plugin: String, why: String)
    /// A library plugin's worker crashed too often; calls are refused until an admin resets it.
    case pluginQuarantined(plugin: String, why: String)
    /// A lifecycle hook failed with `cause`.
    case hookFailed(plugin: String, hook: String, cause: HostError)

    // The host.
    case storeUnavailable
    /// Something the host did not expect; the caller is told only that it is logged.
    case internalFailure(String)

    /// The error of a plugin's ``PluginError`` passed on to the host: a storage outage during the call
    /// (which the plugin sees as ``PluginError/unavailable(_:)``) is the store's unavailability.
    static func passedOn(_ error: PluginError, storeFailed: Bool) -> HostError {
        if case .unavailable = error, storeFailed { return .storeUnavailable }
        return .pluginRefused(error)
    }

    public var description: String {
        switch self {
        case .invalidInput(let why): why
        case .unsupportedMediaType(let type): "unsupported media type \(type)"
        case .bodyTooLarge(let limit): "the request body is larger than \(limit) bytes"
        case .malformedHTTP(let why): "malformed HTTP: \(why)"
        case .bodyTimeout(let seconds): "the request body did not arrive within \(seconds) s"
        case .unauthenticated: "no valid API token"
        case .sdkTokenMissing: "no SDK token"
        case .sdkTokenInvalid: "an invalid SDK token"
        case .sdkTokenExpired: "an expired SDK token"
        case .forbidden(let why): why
        case .roleTooLow(let plugin, let method, let path, let needs): "\(method) \(path) of plugin \(plugin) needs the role \(needs.rawValue)"
        case .tenantNotFound(let id): "tenant \(id) not found"
        case .workspaceNotFound(let id): "workspace \(id) not found"
        case .pluginNotFound(let id): "plugin \(id) is not installed"
        case .tokenNotFound(let id, let tenant): "token \(id) not found" + (tenant.map { " in tenant \($0)" } ?? "")
        case .pluginNotEnabled(let plugin, let workspace): "plugin \(plugin) is not enabled in workspace \(workspace)"
        case .routeNotFound(let plugin, let method, let path): "plugin \(plugin) has no route for \(method) \(path): a plugin is reached only through the routes its manifest declares (routes: method, path), so declare it there and install that version"
        case .valueNotFound: "no value under the key"
        case .deadLetterNotFound(let id, let workspace): "workspace \(workspace) has no dead letter \(id)"
        case .deadLetterNotWaiting(let id, let state, let action): "dead letter \(id) is \(state), so it cannot be \(action)"
        case .tenantExists(let id): "tenant \(id) exists"
        case .workspaceExists(let id): "workspace \(id) exists"
        case .pluginInUse(let id, let workspaces): "plugin \(id) is enabled in \(workspaces.joined(separator: ", "))"
        case .notARemotePlugin(let id): "plugin \(id) is not a remote plugin"
        case .lastPlatformToken(let id): "\(id) is the last platform admin token"
        case .invalidManifest(let problems): "invalid manifest: \(problems.joined(separator: "; "))"
        case .idempotencyKeyInFlight(let key): "the request with Idempotency-Key \(key) is still running; retry in a moment to get its answer"
        case .idempotencyKeyReused(let key):
            "Idempotency-Key \(key) was used for another request (another method, path, query or body); use a new key for a new request"
        case .invalidBundle(let why): "the bundle is refused: \(why)"
        case .untrustedBundle(let why): "the bundle is refused: \(why)"
        case .runtimeKindChanged(let plugin, let installed, let manifest): "plugin \(plugin) is installed as \(installed), the manifest says \(manifest)"
        case .libraryNotLoaded(let why): "the plugin library could not be loaded: \(why)"
        case .unknownPermissions(let grants): "unknown permissions: \(grants.joined(separator: ", "))"
        case .permissionsNotRequested(let plugin, _, let asked): "\(plugin) does not request \(asked.joined(separator: ", "))"
        case .invalidConfig(let problems): "invalid config: \(problems.joined(separator: "; "))"
        case .remoteConfigTooLarge(let bytes, let limit): "config of \(bytes) bytes, over the \(limit) a remote plugin may have"
        case .pluginRefused(let error): "\(error.code): \(error)"
        case .pluginFailed(let plugin): "plugin \(plugin) failed"
        case .pluginUnreachable(let plugin, let why): "remote plugin \(plugin): \(why)"
        case .hookRefused(let plugin, let hook, let status, let code, let message):
            "remote plugin \(plugin) answered \(status) to the \(hook) call" + (code.map { ": \($0) \(message ?? "")" } ?? "")
        case .pluginUnavailable(let plugin, let why): "plugin \(plugin) is unavailable: \(why)"
        case .installSecretMissing(let plugin): "no install secret is stored for \(plugin)"
        case .enablementSecretMissing(let plugin, let workspace): "no enablement secret is stored for \(plugin) in workspace \(workspace)"
        case .pluginTimeout(let plugin, let after): "plugin \(plugin) did not answer within \(after)"
        case .responseTooLarge(let plugin, let bytes, let limit):
            "plugin \(plugin) answered \(bytes.map { "\($0) bytes" } ?? "more than \(limit) bytes"), over the host's limit of \(limit) bytes for a plugin's answer (serve --max-response-size)"
        case .pluginCrashed(let plugin, let why): "the worker of plugin \(plugin) crashed: \(why)"
        case .pluginQuarantined(let plugin, let why): "plugin \(plugin) is quarantined: \(why)"
        case .hookFailed(let plugin, let hook, let cause): "the \(hook) hook of \(plugin) failed: \(cause)"
        case .storeUnavailable: "the store is unavailable"
        case .internalFailure(let why): why
        }
    }
}
