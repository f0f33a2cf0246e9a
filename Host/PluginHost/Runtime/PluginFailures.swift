import Logging
import PluginSDK

/// What the caller is told when a call into a plugin fails, and what the host records of it: the
/// plugin's own ``PluginError`` is passed on (a storage outage during the call as the store's), a
/// ``HostError`` stays as it is, and anything else the plugin threw is logged and counted, never shown.
struct PluginFailures: Sendable {
    let metrics: HostMetrics
    let outages: StoreOutages
    let logger: Logger

    func hostError(_ error: any Error, pluginID: String, workspaceID: String, requestID: String?, started: ContinuousClock.Instant) -> HostError {
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
    func hook(_ name: String, of runner: any RunningPlugin, workspaceID: String, watchdog: CallWatchdog, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let started = ContinuousClock.now
        do {
            try await watchdog.call(pluginID: runner.id, timeout: runner.callLimit, started: started, body)
        } catch {
            throw HostError.hookFailed(plugin: runner.id, hook: name, cause: hostError(error, pluginID: runner.id, workspaceID: workspaceID, requestID: nil, started: started))
        }
    }
}
