import ServiceLifecycle

/// Calls every remote plugin's `GET {url}/health` at the configured interval, all at once, and records
/// the outcome in its status; a healthy remote whose circuit has cooled down gets it closed.
struct RemoteHealthService: Service {
    let runtime: PluginRuntime

    func run() async throws {
        let interval = runtime.configuration.remote.healthInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await withDiscardingTaskGroup { group in
                for remote in runtime.remotePlugins() {
                    group.addTask { await remote.checkHealth() }
                }
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }
}
