import Foundation
import Logging
import PluginSDK
import ServiceLifecycle

extension PluginRuntime {
    /// Re-reads the registry and applies what other host processes changed: plugins installed, upgraded
    /// or removed, workspaces created, enablements added, re-configured or removed. Lifecycle hooks are
    /// not called again; the host that made the change called them.
    func resync() async throws {
        guard isReady else { return }
        try await adminLock.withLock {
            let snapshot = try await store.registry()
            var workspaces: [String: Workspace] = [:]
            for workspace in snapshot.workspaces { workspaces[workspace.id] = workspace }
            let current = registry.state.withLock { $0 }

            var plugins: [String: PluginRegistry.Installed] = [:]
            var retired: [any RunningPlugin] = []
            for record in snapshot.plugins {
                if let existing = current.plugins[record.id], existing.record.manifest.version == record.manifest.version, existing.record.sha256 == record.sha256 {
                    plugins[record.id] = existing
                    continue
                }
                plugins[record.id] = launcher.launch(record)
                if let old = current.plugins[record.id]?.runner { retired.append(old) }
                logger.info("plugin installed by another host", metadata: ["plugin.id": "\(record.id)", "plugin.version": "\(record.manifest.version)"])
            }
            for (id, old) in current.plugins where plugins[id] == nil {
                if let runner = old.runner { retired.append(runner) }
                logger.info("plugin uninstalled by another host", metadata: ["plugin.id": "\(id)"])
            }

            var enablements: [PluginRegistry.EnablementKey: PluginRegistry.ActiveEnablement] = [:]
            for enablement in snapshot.enablements {
                let key = PluginRegistry.EnablementKey(workspaceID: enablement.workspaceID, pluginID: enablement.pluginID)
                let runner = plugins[key.pluginID]?.runner
                if let existing = current.enablements[key], existing.enablement.grants == enablement.grants, existing.enablement.config == enablement.config,
                   current.plugins[key.pluginID]?.runner.map(ObjectIdentifier.init) == runner.map(ObjectIdentifier.init), existing.bound != nil || runner == nil {
                    enablements[key] = existing
                } else {
                    enablements[key] = registry.bind(enablement, plugin: plugins[key.pluginID], workspace: workspaces[key.workspaceID])
                }
            }
            registry.state.withLock { $0 = PluginRegistry.State(plugins: plugins, enablements: enablements, workspaces: workspaces) }
            for runner in retired {
                try? await watchdog.call(pluginID: runner.id, timeout: runner.callLimit) { await runner.shutdown() }
            }
        }
    }
}

/// Connects the runtime to a store that may not be reachable yet (PostgreSQL): prepares the store and
/// reads the registry with backoff until it succeeds, then keeps the registry in step with the other
/// hosts on the same database: on every change notification and, as a fallback, periodically.
struct StoreSupervisor: Service {
    let runtime: PluginRuntime
    let configuration: HostConfiguration
    let announceAdminToken: @Sendable (String) -> Void
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            var delay: Duration = .milliseconds(250)
            var bootstrapped = false
            while !runtime.isReady {
                do {
                    if !bootstrapped {
                        try await runtime.store.prepare()
                        try await runtime.bootstrap()
                        bootstrapped = true
                    }
                    try await ensureAdminToken(configuration: configuration, store: runtime.store, announce: announceAdminToken, logger: logger)
                    if let folder = configuration.manifestsDirectory {
                        await installManifests(in: folder, runtime: runtime, logger: logger)
                    }
                    runtime.markReady()
                    logger.info("connected to the store; serving")
                } catch let error as HostConfigurationError {
                    logger.critical("cannot serve with this store configuration", metadata: ["error": "\(error)"])
                    throw error
                } catch {
                    if Task.isCancelled { return }
                    logger.error("store not reachable; retrying", metadata: [
                        "database": "\(configuration.postgres.map { redactedDatabaseURL($0.url) } ?? "-")", "error": "\(error)", "retry.seconds": "\(delay.seconds)",
                    ])
                    if (try? await Task.sleep(for: delay)) == nil { return }
                    delay = min(delay * 2, .seconds(30))
                }
            }
            guard let interval = runtime.store.registryResyncInterval else {
                _ = try? await Task.sleep(for: .seconds(365 * 24 * 3600))
                return
            }
            let changes = runtime.store.registryChanges
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in changes { await resync() }
                }
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil { await resync() }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    private func resync() async {
        do {
            try await runtime.resync()
        } catch {
            logger.warning("could not re-read the registry; will retry", metadata: ["error": "\(error)"])
        }
    }
}
