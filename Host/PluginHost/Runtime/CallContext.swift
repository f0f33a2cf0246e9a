import Foundation
import Logging
import PluginSDK

/// What every call into one enabled plugin shares, made once when it is enabled (or the host starts):
/// its runner, the workspace it is bound to, and services confined to that workspace.
final class BoundPlugin: Sendable {
    let runner: any RunningPlugin
    let tenantID: String
    let workspaceID: String
    let pluginID: String
    let grants: PermissionSet
    let config: [String: JSONValue]
    let storage: ScopedStorage
    let events: ScopedEvents
    let routes: [CompiledRoute]
    let logger: Logger
    let requestMetrics: PluginRequestMetrics
    /// Where its calls run (``RunningPlugin/executor(for:)``); `nil`, Swift's default executor.
    let executor: (any TaskExecutor)?
    /// ``RunningPlugin/plugin``, read once.
    let plugin: (any Plugin)?

    init(runner: any RunningPlugin, tenantID: String, workspaceID: String, pluginID: String, grants: PermissionSet, config: [String: JSONValue],
         storage: ScopedStorage, events: ScopedEvents, routes: [CompiledRoute], logger: Logger, requestMetrics: PluginRequestMetrics) {
        self.runner = runner
        self.executor = runner.executor(for: grants)
        self.plugin = runner.plugin
        self.tenantID = tenantID
        self.workspaceID = workspaceID
        self.pluginID = pluginID
        self.grants = grants
        self.config = config
        self.storage = storage
        self.events = events
        self.routes = routes
        self.logger = logger
        self.requestMetrics = requestMetrics
    }
}

/// The host's ``PluginContext`` for one call: the bound plugin plus who is calling. Nothing in it can
/// be re-pointed at another workspace.
struct CallContext: PluginContext {
    let bound: BoundPlugin
    let caller: Caller
    let requestID: String?
    /// What only some requests carry, kept behind one reference so that the context every call copies
    /// stays small.
    var details: RequestDetails? = nil

    /// The request's query as the caller sent it (after `?`), for a remote plugin, which receives it
    /// unchanged; `nil` outside a request or without a query.
    var rawQuery: String? { details?.rawQuery }
    /// The path of the manifest route the request matched when it has `{name}` or `*` segments
    /// (`notes/{id}`); `nil` otherwise.
    var route: String? { details?.route }

    var tenantID: String { bound.tenantID }
    var workspaceID: String { bound.workspaceID }
    var pluginID: String { bound.pluginID }
    var grants: PermissionSet { bound.grants }
    var config: [String: JSONValue] { bound.config }
    var storage: any PluginStorage { bound.storage }
    var events: any PluginEvents { bound.events }
    var logger: any PluginLogger {
        SwiftLogPluginLogger(logger: bound.logger, pluginID: bound.pluginID, workspaceID: bound.workspaceID, requestID: requestID)
    }
}

/// A request's raw query and parameterised route, when it has them.
final class RequestDetails: Sendable {
    let rawQuery: String?
    let route: String?

    init(rawQuery: String?, route: String?) {
        self.rawQuery = rawQuery
        self.route = route
    }
}
