import Foundation
import Logging
import PluginSDK
import ServiceLifecycle

extension PluginRuntime {
    /// Applies what other host processes changed (a ``RegistryChangeFeed``'s pending changes): each
    /// plugin, workspace or enablement named is read again and applied, so a change costs the same
    /// whatever the size of the registry. Each is read and applied under the admin lock (one row, one
    /// round trip), so a change this host makes meanwhile is never overwritten by an older read.
    /// Lifecycle hooks are not called again; the host that made the change called them.
    func apply(_ pending: RegistryChangeFeed.Pending) async throws {
        guard isReady else { return }
        switch pending {
        case .everything:
            try await resync()
        case .changes(let changes):
            // Plugins and workspaces first: the enablements read after them bind to them.
            let ordered = changes.sorted { rank($0) < rank($1) }
            for change in ordered {
                try await adminLock.withLock { await apply(change, try await read(change)) }
            }
        }
    }

    private func rank(_ change: RegistryChange) -> Int {
        switch change {
        case .plugin: 0
        case .tenant, .workspace: 1
        case .enablement: 2
        }
    }

    /// What a change's record is in the store now (`nil`: deleted).
    private enum Record {
        case plugin(InstalledPluginRecord?)
        case workspace(Workspace?)
        /// With its workspace when this host does not know it yet (a notification may come before the
        /// workspace's).
        case enablement(Enablement?, Workspace?)
        case none
    }

    private func read(_ change: RegistryChange) async throws -> Record {
        switch change {
        case .plugin(let id): .plugin(try await store.plugin(id: id))
        case .workspace(let id): .workspace(try await store.workspace(id: id))
        case .enablement(let workspaceID, let pluginID):
            .enablement(
                try await store.enablement(workspaceID: workspaceID, pluginID: pluginID),
                registry.workspace(id: workspaceID) == nil ? try await store.workspace(id: workspaceID) : nil
            )
        case .tenant: .none
        }
    }

    private func apply(_ change: RegistryChange, _ record: Record) async {
        switch (change, record) {
        case (.plugin(let id), .plugin(let stored)):
            let current = registry.installed(id)
            // The same install, running: nothing to do. One that could not be started (its bundle could not
            // be fetched, say) is tried again.
            if let stored, let current, current.record.manifest.version == stored.manifest.version, current.record.sha256 == stored.sha256,
               current.record.bundle == stored.bundle, current.runner != nil { return }
            var launched: PluginRegistry.Installed?
            if let stored { launched = await launcher.launch(stored: stored) }
            let retired = registry.state.withLock { state -> (any RunningPlugin)? in
                let old = state.plugins[id]?.runner
                state.plugins[id] = launched
                for (key, active) in state.enablements where key.pluginID == id {
                    state.enablements[key] = registry.bind(active.enablement, plugin: launched, workspace: state.workspaces[key.workspaceID])
                }
                return old
            }
            logger.info(stored == nil ? "plugin uninstalled by another host" : "plugin installed by another host", metadata: [
                "plugin.id": "\(id)", "plugin.version": "\(stored?.manifest.version ?? "-")",
            ])
            if let retired { await retire(retired) }
        case (.workspace(let id), .workspace(let stored)):
            // A workspace never changes once made; its enablements are bound when they come.
            registry.state.withLock { $0.workspaces[id] = stored }
        case (.enablement(let workspaceID, let pluginID), .enablement(let stored, let workspace)):
            let key = PluginRegistry.EnablementKey(workspaceID: workspaceID, pluginID: pluginID)
            registry.state.withLock { state in
                if let workspace, state.workspaces[workspaceID] == nil { state.workspaces[workspaceID] = workspace }
                guard let stored else {
                    state.enablements[key] = nil
                    return
                }
                if let existing = state.enablements[key], existing.enablement.grants == stored.grants, existing.enablement.config == stored.config { return }
                state.enablements[key] = registry.bind(stored, plugin: state.plugins[pluginID], workspace: state.workspaces[workspaceID])
            }
        default:
            break
        }
    }

    /// Re-reads the whole registry and applies what differs. The read is made without the admin lock;
    /// it is applied only if no registry change ended meanwhile (it may be missing from the read), else
    /// read again. After two such tries (changes keep coming), the third read is made under the lock.
    func resync() async throws {
        guard isReady else { return }
        for _ in 0..<2 {
            let seen = adminLock.completed
            let snapshot = try await store.registry()
            let applied = try await adminLock.withLock {
                guard adminLock.completed == seen else { return false }
                await apply(snapshot)
                return true
            }
            if applied { return }
        }
        try await adminLock.withLock { await apply(try await store.registry()) }
    }

    private func apply(_ snapshot: RegistrySnapshot) async {
        var workspaces: [String: Workspace] = [:]
        for workspace in snapshot.workspaces { workspaces[workspace.id] = workspace }
        let current = registry.state.withLock { $0 }

        var plugins: [String: PluginRegistry.Installed] = [:]
        var retired: [any RunningPlugin] = []
        for record in snapshot.plugins {
            if let existing = current.plugins[record.id], existing.record.manifest.version == record.manifest.version, existing.record.sha256 == record.sha256,
               existing.record.bundle == record.bundle, existing.runner != nil {
                plugins[record.id] = existing
                continue
            }
            plugins[record.id] = await launcher.launch(stored: record)
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
               current.plugins[key.pluginID]?.runner.map(ObjectIdentifier.init) == runner.map(ObjectIdentifier.init),
               current.workspaces[key.workspaceID] == workspaces[key.workspaceID], existing.bound != nil || runner == nil {
                enablements[key] = existing
            } else {
                enablements[key] = registry.bind(enablement, plugin: plugins[key.pluginID], workspace: workspaces[key.workspaceID])
            }
        }
        registry.state.withLock { $0 = PluginRegistry.State(plugins: plugins, enablements: enablements, workspaces: workspaces) }
        for runner in retired { await retire(runner) }
    }

    /// Shuts down a runner another host replaced or removed, within its call limit.
    private func retire(_ runner: any RunningPlugin) async {
        try? await watchdog.call(pluginID: runner.id, timeout: runner.callLimit) { await runner.shutdown() }
    }
}

/// Connects the runtime to a store that may not be reachable yet (PostgreSQL): prepares the store and
/// reads the registry with backoff until it succeeds, then keeps the registry in step with the other
/// hosts on the same database: each change they notify is applied, and the whole registry is read
/// again periodically in case a notification was missed.
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
                    try await TokenAdministration.ensureAdminToken(configuration: configuration, store: runtime.store, announce: announceAdminToken, logger: logger)
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
            guard let feed = runtime.store.registryChanges, let interval = runtime.store.registryResyncInterval else {
                _ = try? await Task.sleep(for: .seconds(365 * 24 * 3600))
                return
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in feed.wakeups {
                        guard let pending = feed.take() else { continue }
                        await sync { try await runtime.apply(pending) }
                    }
                }
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil { await sync { try await runtime.resync() } }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    private func sync(_ body: () async throws -> Void) async {
        do {
            try await body()
        } catch {
            logger.warning("could not read registry changes; will read everything again", metadata: ["error": "\(error)"])
            // Not at once: the store is likely down, and the next attempt would fail the same way.
            try? await Task.sleep(for: .seconds(1))
            runtime.store.registryChanges?.addEverything()
        }
    }
}
