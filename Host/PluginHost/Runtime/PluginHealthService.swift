import ServiceLifecycle

/// Checks every running plugin's health at the configured interval, all at once (a remote plugin: its
/// `GET {url}/health`, recorded in its status, and a healthy remote whose circuit has cooled down gets
/// it closed; an in-process plugin has nothing to check).
struct PluginHealthService: Service {
    let runtime: PluginRuntime

    func run() async throws {
        let interval = runtime.configuration.remote.healthInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await withDiscardingTaskGroup { group in
                for runner in runtime.registry.runners() {
                    group.addTask { await runner.checkHealth() }
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
