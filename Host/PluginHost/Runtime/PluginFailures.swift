import Logging
import PluginSDK

/// What the caller is told when a call into a plugin fails, and what the host records of it: the
/// plugin's own ``PluginError`` is passed on (an unavailability while its storage in this workspace met
/// a store outage during the call, as the store's), a ``HostError`` stays as it is, and anything else the
/// plugin threw is logged and counted, never shown.
struct PluginFailures: Sendable {
    let metrics: HostMetrics
    let logger: Logger

    func hostError(
        _ error: any Error, pluginID: String, workspaceID: String, requestID: String?, started: ContinuousClock.Instant, outages: StoreOutages
    ) -> HostError {
        switch error {
        case let error as HostError:
            if case .pluginTimeout = error { metrics.recordPluginError(plugin: pluginID, kind: "timeout") }
            return error
        case let error as PluginError:
            return .passedOn(error, storeFailed: outages.occurred(since: started))
        default:
            metrics.recordPluginError(plugin: pluginID, kind: "error")
            logger.error("plugin threw", metadata: [
                "plugin.id": "\(pluginID)", "workspace.id": "\(workspaceID)", "request.id": "\(requestID ?? "-")", "error": "\(String(reflecting: error))",
            ])
            return .pluginFailed(pluginID)
        }
    }

    /// Runs a lifecycle hook within the plugin's call limit; a failure is the hook's.
    func hook(_ name: String, of bound: BoundPlugin, watchdog: CallWatchdog, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let started = ContinuousClock.now
        do {
            try await watchdog.call(pluginID: bound.pluginID, timeout: bound.runner.callLimit, started: started, body)
        } catch {
            let cause = hostError(error, pluginID: bound.pluginID, workspaceID: bound.workspaceID, requestID: nil, started: started, outages: bound.storage.outages)
            throw HostError.hookFailed(plugin: bound.pluginID, hook: name, cause: cause)
        }
    }
}
