import Logging
import PluginSDK
import Synchronization

/// The plugins installed on this host, the workspaces, and the enablements binding the two, as every
/// call reads them: an in-memory copy under a `Mutex`. ``Administration`` and the registry sync change
/// it, after the store.
final class PluginRegistry: Sendable {
    /// An installed plugin and its runner; `runner` is `nil` when its library could not be loaded.
    struct Installed: Sendable {
        var record: InstalledPluginRecord
        var runner: (any RunningPlugin)?
        var loadError: String?
        var requested: PermissionSet
    }

    struct EnablementKey: Hashable {
        var workspaceID: String
        var pluginID: String
    }

    /// A class, so that the request path's lookup copies one reference out of the registry instead of
    /// retaining and releasing every field of the enablement.
    final class ActiveEnablement: Sendable {
        let enablement: Enablement
        /// What was granted and is still requested by the installed version.
        let grants: PermissionSet
        /// Everything a call needs, made once per enablement; `nil` while the plugin is not loaded.
        let bound: BoundPlugin?

        init(enablement: Enablement, grants: PermissionSet, bound: BoundPlugin?) {
            self.enablement = enablement
            self.grants = grants
            self.bound = bound
        }
    }

    struct State {
        var plugins: [String: Installed] = [:]
        var enablements: [EnablementKey: ActiveEnablement] = [:]
        var workspaces: [String: Workspace] = [:]
        /// Enablements whose `enabled` hook is running: SDK calls the plugin makes from its hook (over
        /// HTTP) reach them with the new grants, while requests and events still see the committed ones.
        var enabling: [EnablementKey: ActiveEnablement] = [:]
    }

    let state = Mutex(State())
    private let store: any HostStore
    let outbox: EventOutbox
    private let configuration: HostConfiguration
    private let metrics: HostMetrics
    private let logger: Logger

    init(store: any HostStore, outbox: EventOutbox, configuration: HostConfiguration, metrics: HostMetrics, logger: Logger) {
        self.store = store
        self.outbox = outbox
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: Plugins

    func installed(_ id: String) -> Installed? {
        state.withLock { $0.plugins[id] }
    }

    func plugins() -> [PluginStatus] {
        state.withLock { state in state.plugins.values.map { status($0, state) }.sorted { $0.record.id < $1.record.id } }
    }

    func plugin(id: String) -> PluginStatus? {
        state.withLock { state in state.plugins[id].map { status($0, state) } }
    }

    private func status(_ plugin: Installed, _ state: State) -> PluginStatus {
        PluginStatus(
            record: plugin.record, loaded: plugin.runner != nil, loadError: plugin.loadError,
            enabledIn: state.enablements.keys.filter { $0.pluginID == plugin.record.id }.map(\.workspaceID).sorted(),
            run: plugin.runner?.runStatus ?? RunStatus(),
            isolation: plugin.record.manifest.runtime.kind == .library ? plugin.record.manifest.runtime.isolation ?? configuration.workers.defaultIsolation : nil
        )
    }

    /// Every plugin that runs, for health checks.
    func runners() -> [any RunningPlugin] {
        state.withLock { $0.plugins.values.compactMap(\.runner) }
    }

    // MARK: Workspaces and enablements

    func workspaceIDs() -> [String] {
        state.withLock { Array($0.workspaces.keys) }
    }

    func workspace(id: String) -> Workspace? {
        state.withLock { $0.workspaces[id] }
    }

    func active(workspaceID: String, pluginID: String) -> ActiveEnablement? {
        state.withLock { $0.enablements[EnablementKey(workspaceID: workspaceID, pluginID: pluginID)] }
    }

    func enablements(workspaceID: String) -> [Enablement] {
        state.withLock { $0.enablements.values.filter { $0.enablement.workspaceID == workspaceID }.map(\.enablement) }
            .sorted { $0.pluginID < $1.pluginID }
    }

    /// `enablement` with the values of settings the manifest marks `secret` replaced, for API answers.
    func masked(_ enablement: Enablement) -> Enablement {
        let properties = state.withLock { $0.plugins[enablement.pluginID]?.record.manifest.config.properties } ?? [:]
        var masked = enablement
        for (key, property) in properties where property.secret && masked.config[key] != nil {
            masked.config[key] = .string("********")
        }
        return masked
    }

    /// Binds an enablement to the installed plugin: effective grants (granted and still requested),
    /// compiled routes, and storage and event services confined to the workspace.
    func bind(_ enablement: Enablement, plugin: Installed?, workspace: Workspace?) -> ActiveEnablement {
        let grants = PermissionSet(enablement.grants.compactMap(Permission.init).filter { plugin?.requested.contains($0) ?? false })
        guard let plugin, let runner = plugin.runner, let workspace else { return ActiveEnablement(enablement: enablement, grants: grants, bound: nil) }
        let scope = StorageScope(workspaceID: workspace.id, pluginID: plugin.record.id)
        let bound = BoundPlugin(
            runner: runner, tenantID: workspace.tenantID, workspaceID: workspace.id, pluginID: plugin.record.id, grants: grants,
            config: enablement.config,
            storage: ScopedStorage(
                store: store, outbox: outbox, outages: StoreOutages(), scope: scope, grants: grants, maxKeyBytes: configuration.maxKeyBytes,
                maxValueBytes: configuration.maxValueBytes),
            events: ScopedEvents(outbox: outbox, workspaceID: workspace.id, pluginID: plugin.record.id, grants: grants),
            routes: plugin.record.manifest.routes.map(CompiledRoute.init), logger: logger, requestMetrics: metrics.requests(plugin: plugin.record.id)
        )
        return ActiveEnablement(enablement: enablement, grants: grants, bound: bound)
    }

    /// Replaces the whole registry (at start, and when it is read again from the store).
    func replace(plugins: [String: Installed], workspaces: [String: Workspace], enablements: [Enablement]) {
        var active: [EnablementKey: ActiveEnablement] = [:]
        for enablement in enablements {
            let key = EnablementKey(workspaceID: enablement.workspaceID, pluginID: enablement.pluginID)
            active[key] = bind(enablement, plugin: plugins[enablement.pluginID], workspace: workspaces[enablement.workspaceID])
        }
        state.withLock { $0 = State(plugins: plugins, enablements: active, workspaces: workspaces) }
    }
}

/// A plugin as the API shows it.
public struct PluginStatus: Sendable {
    public var record: InstalledPluginRecord
    public var loaded: Bool
    public var loadError: String?
    public var enabledIn: [String]
    /// What its runner adds: a remote plugin's health and circuit.
    var run: RunStatus
    /// Where a library plugin runs: its manifest's choice, or the host's default.
    public var isolation: PluginManifest.Runtime.Isolation?
    /// A remote plugin's install secret, only in the answer of the install that made it.
    public var installSecret: String?
}
