import PluginSDK

/// The request path into a plugin: find the enablement, check the manifest's route and role, make the
/// call's context from the parts bound at enablement, call the plugin within its limit, and say what
/// went wrong in the host's terms.
final class Dispatcher: Sendable {
    let registry: PluginRegistry
    let failures: PluginFailures
    /// The largest answer body a plugin may give, whatever its runtime.
    let maxResponseBytes: Int

    init(registry: PluginRegistry, failures: PluginFailures, maxResponseBytes: Int) {
        self.registry = registry
        self.failures = failures
        self.maxResponseBytes = maxResponseBytes
    }

    /// The context of a request to `pluginID` in `workspace`, or why there is none.
    func prepare(workspace: Workspace, pluginID: String, method: String, path: String, caller: Caller, requestID: String) throws(HostError) -> CallContext {
        guard let active = registry.active(workspaceID: workspace.id, pluginID: pluginID) else {
            throw .pluginNotEnabled(plugin: pluginID, workspace: workspace.id)
        }
        guard let bound = active.bound else {
            throw .pluginUnavailable(plugin: pluginID, why: registry.installed(pluginID)?.loadError ?? "not loaded")
        }
        var context = CallContext(bound: bound, caller: caller, requestID: requestID)
        if !bound.routes.isEmpty {
            // By index: the hot path copies no route out of the array.
            guard let index = bound.routes.firstIndex(where: { $0.matches(method: method, path: path) }) else {
                throw .routeNotFound(plugin: pluginID, method: method, path: path)
            }
            let needs = bound.routes[index].minimumRole
            guard caller.role >= needs else { throw .roleTooLow(plugin: pluginID, method: method, path: path, needs: needs) }
            if let route = bound.routes[index].parameterized { context.details = RequestDetails(rawQuery: nil, route: route) }
        }
        return context
    }

    /// Runs a request through the plugin within its limit; every failure is a ``HostError``. `started`
    /// is when the caller began the call, where the limit counts from.
    func call(_ request: PluginRequest, context: CallContext, started: ContinuousClock.Instant) async throws(HostError) -> PluginResponse {
        let pluginID = context.pluginID
        let request = Self.routed(request, context)
        let response: PluginResponse
        do {
            response = try await context.bound.runner.handle(request, context: context, started: started)
        } catch {
            throw failures.hostError(
                error, pluginID: pluginID, workspaceID: context.workspaceID, requestID: request.requestID, started: started, outages: context.bound.storage.outages
            )
        }
        guard (100...599).contains(response.status) else {
            failures.logger.error("plugin answered with an invalid status", metadata: ["plugin.id": "\(pluginID)", "request.id": "\(request.requestID)", "status": "\(response.status)"])
            failures.metrics.recordPluginError(plugin: pluginID, kind: "error")
            throw .pluginFailed(pluginID)
        }
        // A worker or a remote is not read past the limit; an in-process plugin's answer is in memory
        // already, but goes no further.
        guard response.body.count <= maxResponseBytes else {
            failures.logger.warning("plugin answered over the response size limit", metadata: [
                "plugin.id": "\(pluginID)", "request.id": "\(request.requestID)", "bytes": "\(response.body.count)", "limit": "\(maxResponseBytes)"])
            failures.metrics.recordPluginError(plugin: pluginID, kind: "error")
            throw .responseTooLarge(plugin: pluginID, bytes: response.body.count, limit: maxResponseBytes)
        }
        return response
    }

    /// The request with the route it matched named, for `request.parameters`, when the route has
    /// parameters (a caller's header of that name is dropped by the HTTP layer). Nothing is copied for a
    /// route without them.
    static func routed(_ request: PluginRequest, _ context: CallContext) -> PluginRequest {
        guard let route = context.route else { return request }
        var request = request
        request.headers[PluginRequest.routeHeader] = route
        return request
    }

    /// ``prepare(workspace:pluginID:method:path:caller:requestID:)``, then ``call(_:context:started:)``.
    func handle(_ request: PluginRequest, workspace: Workspace, pluginID: String, caller: Caller) async throws(HostError) -> PluginResponse {
        let context = try prepare(workspace: workspace, pluginID: pluginID, method: request.method, path: request.path, caller: caller, requestID: request.requestID)
        return try await call(request, context: context, started: .now)
    }
}
