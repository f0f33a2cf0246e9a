import Foundation
import Logging
import PluginSDK
import Synchronization

/// The registry of installed plugins and their enablements, and the one path every call into a plugin
/// takes: look up, check grants and route, build a context bound to one workspace, call.
///
/// Reads on the request path come from an in-memory copy of the registry under a `Mutex`; admin changes
/// are serialised, written to the store first, then applied to that copy.
public final class PluginRuntime: Sendable {
    public let configuration: HostConfiguration
    let store: any HostStore
    let loader: PluginLibraryLoader
    let validator: ManifestValidator
    let bus: any EventBus
    let metrics: HostMetrics
    let logger: Logger
    let adminLock = AsyncMutex()
    let watchdog = CallWatchdog()
    /// The HTTP client, key and callback URL of remote plugins.
    let remote: RemoteServices
    let state = Mutex(State())
    private let readiness = Atomic<Bool>(false)

    /// Whether the registry has been read from the store; until then `/ready` and the API answer 503.
    public var isReady: Bool { readiness.load(ordering: .acquiring) }

    struct LoadedPlugin: Sendable {
        var record: InstalledPluginRecord
        var instance: (any Plugin)?
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
        var plugins: [String: LoadedPlugin] = [:]
        var enablements: [EnablementKey: ActiveEnablement] = [:]
        var workspaces: [String: Workspace] = [:]
        /// Enablements whose `enabled` hook is running: a remote plugin's SDK calls from its hook reach
        /// them (with the new grants), while requests and events still see the committed ones.
        var enabling: [EnablementKey: ActiveEnablement] = [:]
    }

    /// A plugin as the API shows it.
    public struct PluginStatus: Sendable {
        public var record: InstalledPluginRecord
        public var loaded: Bool
        public var loadError: String?
        public var enabledIn: [String]
        /// A remote plugin's health and circuit.
        var remote: RemotePlugin.Status?
        /// A remote plugin's install secret, only in the answer of the install that made it.
        public var installSecret: String?
    }

    init(
        configuration: HostConfiguration, store: any HostStore, loader: PluginLibraryLoader, bus: any EventBus, metrics: HostMetrics, secrets: HostSecrets,
        logger: Logger
    ) {
        self.configuration = configuration
        self.remote = RemoteServices(configuration: configuration.remote, secrets: secrets, store: store, host: configuration, logger: logger)
        self.store = store
        self.loader = loader
        self.validator = ManifestValidator(inspector: loader.inspector)
        self.bus = bus
        self.metrics = metrics
        self.logger = logger
    }

    /// A runtime without the HTTP layer, on `store`, with the plugins `store` holds loaded: for
    /// embedding the host in another process and for benchmarks of the dispatch path. Plugin call
    /// timeouts need ``CallWatchdogService`` running on ``watchdog``, as `buildApplication` does.
    public static func standalone(configuration: HostConfiguration, store: any HostStore, logger: Logger) async throws -> PluginRuntime {
        let runtime = PluginRuntime(
            configuration: configuration, store: store, loader: PluginLibraryLoader(), bus: InProcessEventBus(), metrics: HostMetrics(),
            secrets: try HostSecrets.load(configured: configuration.remote.secretKey, folder: configuration.dataDirectory), logger: logger
        )
        try await store.prepare()
        try await runtime.bootstrap()
        runtime.markReady()
        return runtime
    }

    // MARK: Start

    /// Loads what the store holds. A plugin whose library no longer passes its checks stays installed but
    /// unavailable (503 `PLUGIN_UNAVAILABLE`, reason in `GET /v1/plugins/{id}`); the host starts anyway.
    func bootstrap() async throws {
        let registry = try await store.registry()
        var plugins: [String: LoadedPlugin] = [:]
        for record in registry.plugins {
            plugins[record.id] = load(record)
        }
        var workspaces: [String: Workspace] = [:]
        for workspace in registry.workspaces { workspaces[workspace.id] = workspace }
        var enablements: [EnablementKey: ActiveEnablement] = [:]
        for enablement in registry.enablements {
            let key = EnablementKey(workspaceID: enablement.workspaceID, pluginID: enablement.pluginID)
            enablements[key] = activate(enablement, plugin: plugins[enablement.pluginID], workspace: workspaces[enablement.workspaceID])
        }
        state.withLock { $0 = State(plugins: plugins, enablements: enablements, workspaces: workspaces) }
    }

    /// Opens the API: called once the registry is loaded and the admin token and manifests are in place.
    func markReady() {
        readiness.store(true, ordering: .releasing)
    }

    /// Checks and loads the library of an installed plugin. One that no longer passes its checks stays
    /// installed but unavailable, with the reason.
    func load(_ record: InstalledPluginRecord) -> LoadedPlugin {
        let manifest = record.manifest
        var loaded = LoadedPlugin(record: record, instance: nil, loadError: nil, requested: manifest.requestedPermissions)
        if manifest.runtime.kind == .remote {
            loaded.instance = RemotePlugin(manifest: manifest, services: remote)
            return loaded
        }
        let started = ContinuousClock.now
        do {
            let inspection = try loader.inspect(path: manifest.runtime.resolvedPath)
            guard inspection.magic.pluginID == manifest.id, inspection.magic.pluginVersion == manifest.version else {
                throw LoadError(path: manifest.runtime.resolvedPath, pluginID: manifest.id, reason: .magicUnreadable(
                    "the library now declares \(inspection.magic.pluginID) \(inspection.magic.pluginVersion), installed was \(manifest.id) \(manifest.version)"))
            }
            loaded.instance = try loader.load(path: manifest.runtime.resolvedPath, inspection: inspection)
            metrics.recordLoad(plugin: manifest.id, duration: ContinuousClock.now - started)
        } catch {
            loaded.loadError = String(describing: error)
            logger.error("installed plugin could not be loaded", metadata: ["plugin.id": "\(manifest.id)", "error": "\(error)"])
        }
        return loaded
    }

    /// Calls every loaded plugin's shutdown hook, each bounded by the plugin timeout.
    func shutdown() async {
        let instances = state.withLock { $0.plugins.values.compactMap { plugin in plugin.instance.map { (plugin.record.id, $0) } } }
        for (id, instance) in instances {
            do {
                try await withPluginTimeout(pluginID: id) { await instance.shutdown() }
            } catch {
                logger.warning("plugin shutdown hook did not finish", metadata: ["plugin.id": "\(id)", "error": "\(error)"])
            }
        }
        await remote.shutdown()
    }

    // MARK: Plugins

    public func plugins() -> [PluginStatus] {
        state.withLock { state in state.plugins.values.map { status($0, state) }.sorted { $0.record.id < $1.record.id } }
    }

    public func plugin(id: String) -> PluginStatus? {
        state.withLock { state in state.plugins[id].map { status($0, state) } }
    }

    private func status(_ plugin: LoadedPlugin, _ state: State) -> PluginStatus {
        PluginStatus(
            record: plugin.record, loaded: plugin.instance != nil, loadError: plugin.loadError,
            enabledIn: state.enablements.keys.filter { $0.pluginID == plugin.record.id }.map(\.workspaceID).sorted(),
            remote: (plugin.instance as? RemotePlugin)?.status
        )
    }

    /// The remote plugins, for health checks.
    func remotePlugins() -> [RemotePlugin] {
        state.withLock { $0.plugins.values.compactMap { $0.instance as? RemotePlugin } }
    }

    /// Validates a manifest and its library, loads it and records the installation; all or nothing.
    /// Installing a higher version of an installed id upgrades it in place; a lower one is refused.
    public func install(manifestText: String, baseDirectory: String) async throws -> PluginStatus {
        try await adminLock.withLock {
            let validated: ManifestValidator.Validated
            switch validator.validate(text: manifestText, baseDirectory: baseDirectory, installedVersion: { id in
                self.state.withLock { $0.plugins[id]?.record.manifest.version }
            }) {
            case .success(let value): validated = value
            case .failure(let errors):
                throw HostError(400, "INVALID_MANIFEST", "the manifest has \(errors.problems.count) problem(s); nothing was installed",
                                details: errors.problems.map(\.description))
            }
            let manifest = validated.manifest
            if let installed = state.withLock({ $0.plugins[manifest.id]?.record.manifest.runtime.kind }), installed != manifest.runtime.kind {
                throw HostError(400, "INVALID_MANIFEST", "the manifest changes the runtime kind of an installed plugin; nothing was installed", details: [
                    "runtime.kind: \(manifest.id) is installed as \(installed.rawValue); an upgrade cannot make it \(manifest.runtime.kind.rawValue), so uninstall it first",
                ])
            }
            let instance: any Plugin
            var installSecret: String?
            if let inspection = validated.inspection {
                let started = ContinuousClock.now
                do {
                    instance = try loader.load(path: manifest.runtime.resolvedPath, inspection: inspection)
                } catch {
                    throw HostError(400, "INVALID_MANIFEST", "the plugin library could not be loaded; nothing was installed",
                                    details: ["runtime.path: \(error)"])
                }
                metrics.recordLoad(plugin: manifest.id, duration: ContinuousClock.now - started)
            } else {
                instance = RemotePlugin(manifest: manifest, services: remote)
                // A new install gets a new secret, shown once; an upgrade keeps the one the remote has.
                let key = RemoteServices.installSecretKey(plugin: manifest.id)
                let upgrade = state.withLock { $0.plugins[manifest.id] != nil }
                let keepsSecret = upgrade ? try await remote.secret(key) != nil : false
                if !keepsSecret {
                    let secret = RemoteEnvelope.newSecret()
                    try await remote.setSecret(key, secret)
                    installSecret = secret
                }
            }
            let record = InstalledPluginRecord(manifest: manifest, sha256: validated.inspection?.sha256 ?? "", installedAt: Date())
            try await store.installPlugin(record)
            let previous = state.withLock { state -> LoadedPlugin? in
                let previous = state.plugins[manifest.id]
                let loaded = LoadedPlugin(record: record, instance: instance, loadError: nil, requested: manifest.requestedPermissions)
                state.plugins[manifest.id] = loaded
                for (key, active) in state.enablements where key.pluginID == manifest.id {
                    state.enablements[key] = activate(active.enablement, plugin: loaded, workspace: state.workspaces[key.workspaceID])
                }
                return previous
            }
            if let old = previous?.instance { await old.shutdown() }
            logger.info("plugin installed", metadata: ["plugin.id": "\(manifest.id)", "plugin.version": "\(manifest.version)", "runtime.kind": "\(manifest.runtime.kind.rawValue)"])
            // Registered above under the admin lock, which an uninstall or a resync would also need.
            var status = plugin(id: manifest.id)!
            status.installSecret = installSecret
            return status
        }
    }

    /// Removes a plugin that no workspace has enabled. Its workspaces' data stays in the store.
    public func uninstall(id: String) async throws {
        try await adminLock.withLock {
            guard let plugin = self.plugin(id: id) else { throw HostError.pluginNotFound(id) }
            guard plugin.enabledIn.isEmpty else {
                throw HostError(409, "PLUGIN_IN_USE", "plugin \(id) is enabled in \(plugin.enabledIn.count) workspace(s); disable it there first",
                                details: plugin.enabledIn)
            }
            _ = try await store.deletePlugin(id: id)
            if plugin.record.manifest.runtime.kind == .remote { try await remote.setSecret(RemoteServices.installSecretKey(plugin: id), nil) }
            let removed = state.withLock { $0.plugins.removeValue(forKey: id) }
            // The library stays mapped: code containing Swift metadata is never unloaded.
            if let instance = removed?.instance { await instance.shutdown() }
            logger.info("plugin uninstalled", metadata: ["plugin.id": "\(id)"])
        }
    }

    /// Replaces a remote plugin's install secret; the answer is the only time the new one is shown. The
    /// remote needs it before the next `enabled` call (including a resumed one after it restarts).
    public func rotateInstallSecret(id: String) async throws -> String {
        try await adminLock.withLock {
            guard let plugin = self.plugin(id: id) else { throw HostError.pluginNotFound(id) }
            guard plugin.record.manifest.runtime.kind == .remote else {
                throw HostError(409, "NOT_A_REMOTE_PLUGIN", "plugin \(id) runs in-process (runtime.kind: library) and has no install secret")
            }
            let secret = RemoteEnvelope.newSecret()
            try await remote.setSecret(RemoteServices.installSecretKey(plugin: id), secret)
            logger.info("install secret rotated", metadata: ["plugin.id": "\(id)"])
            return secret
        }
    }

    // MARK: Tenancy

    public func createTenant(id: String, name: String) async throws -> Tenant {
        try Self.checkIdentifier(id, field: "id")
        try Self.checkName(name)
        let tenant = Tenant(id: id, name: name, createdAt: Date())
        do {
            try await store.createTenant(tenant)
        } catch let error as StoreError where error.code == .alreadyExists {
            throw HostError(409, "TENANT_EXISTS", "tenant \(id) already exists")
        }
        return tenant
    }

    public func createWorkspace(id: String, name: String, tenantID: String) async throws -> Workspace {
        try Self.checkIdentifier(id, field: "id")
        try Self.checkName(name)
        guard try await store.tenant(id: tenantID) != nil else { throw HostError.tenantNotFound(tenantID) }
        let workspace = Workspace(id: id, tenantID: tenantID, name: name, createdAt: Date())
        // Under the admin lock, so a registry resync running meanwhile cannot overwrite it.
        try await adminLock.withLock {
            do {
                try await store.createWorkspace(workspace)
            } catch let error as StoreError where error.code == .alreadyExists {
                throw HostError(409, "WORKSPACE_EXISTS", "workspace \(id) already exists")
            }
            state.withLock { $0.workspaces[id] = workspace }
        }
        return workspace
    }

    public func workspace(id: String) -> Workspace? {
        state.withLock { $0.workspaces[id] }
    }

    static func checkName(_ name: String) throws {
        guard (1...200).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw HostError.badRequest("name must be 1 to 200 characters without control characters")
        }
    }

    /// Tenant and workspace ids go into URL paths: `.` and `..` (which clients resolve away) and ids
    /// that read as options on a command line (`-x`) are refused by asking for a letter or digit first.
    static func checkIdentifier(_ id: String, field: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
        guard (1...64).contains(id.count), id.allSatisfy(allowed.contains), let first = id.first, first.isLetter || first.isNumber else {
            throw HostError.badRequest("\(field) \"\(id)\" must be 1 to 64 characters of [a-z0-9-_.], starting with a letter or digit")
        }
    }

    // MARK: Enablement

    /// Enables (or re-configures) a plugin in a workspace: grants must be a subset of what it requests,
    /// config must fit its schema, and its `enabled` hook must succeed; otherwise nothing changes.
    public func enable(workspace: Workspace, pluginID: String, grants: [String], config: [String: JSONValue], caller: Caller) async throws -> Enablement {
        try await adminLock.withLock {
            guard let plugin = state.withLock({ $0.plugins[pluginID] }) else { throw HostError.pluginNotFound(pluginID) }
            guard let instance = plugin.instance else { throw HostError.pluginUnavailable(pluginID, plugin.loadError ?? "not loaded") }
            var unknown: [String] = []
            var notRequested: [String] = []
            for grant in grants {
                guard let permission = Permission(grant) else {
                    unknown.append("grants: \"\(grant)\" is not a permission")
                    continue
                }
                if !plugin.requested.contains(permission) {
                    notRequested.append("grants: \(grant) is not requested by \(pluginID) (it requests: \(plugin.record.manifest.permissions.joined(separator: ", ")))")
                }
            }
            if !unknown.isEmpty { throw HostError(400, "INVALID_GRANT", "grants holds unknown permissions", details: unknown) }
            if !notRequested.isEmpty {
                throw HostError(400, "GRANT_NOT_REQUESTED", "a plugin can only be granted what its manifest requests", details: notRequested)
            }
            let checkedConfig: [String: JSONValue]
            switch plugin.record.manifest.config.validate(config) {
            case .success(let value): checkedConfig = value
            case .failure(let errors): throw HostError(400, "INVALID_CONFIG", "config does not fit the plugin's schema", details: errors.problems)
            }
            if plugin.record.manifest.runtime.kind == .remote, case let size = RemoteEnvelope.configSize(checkedConfig), size > RemoteEnvelope.maximumConfigBytes {
                throw HostError(400, "INVALID_CONFIG", "config is too large for a remote plugin", details: [
                    "config: \(size) bytes as JSON; a remote plugin's config travels in the \(RemoteEnvelope.contextHeader) header of every call, "
                        + "so it may be at most \(RemoteEnvelope.maximumConfigBytes) bytes (keep large data in the plugin's storage)",
                ])
            }
            let enablement = Enablement(workspaceID: workspace.id, pluginID: pluginID, grants: Array(Set(grants)).sorted(), config: checkedConfig, updatedAt: Date())
            let active = activate(enablement, plugin: plugin, workspace: workspace)
            let context = CallContext(bound: active.bound!, caller: caller, requestID: nil)
            let key = EnablementKey(workspaceID: workspace.id, pluginID: pluginID)
            state.withLock { $0.enabling[key] = active }
            defer { state.withLock { _ = $0.enabling.removeValue(forKey: key) } }
            try await callHook(pluginID: pluginID, hook: "enabled") { try await instance.enabled(context: context) }
            try await store.putEnablement(enablement)
            state.withLock { $0.enablements[EnablementKey(workspaceID: workspace.id, pluginID: pluginID)] = active }
            logger.info("plugin enabled", metadata: ["plugin.id": "\(pluginID)", "workspace.id": "\(workspace.id)", "grants": "\(enablement.grants)"])
            return enablement
        }
    }

    /// Disables a plugin in a workspace after its `disabled` hook; its data is kept.
    public func disable(workspace: Workspace, pluginID: String, caller: Caller) async throws {
        try await adminLock.withLock {
            let key = EnablementKey(workspaceID: workspace.id, pluginID: pluginID)
            let (plugin, active) = state.withLock { ($0.plugins[pluginID], $0.enablements[key]) }
            guard let active else { throw HostError.pluginNotEnabled(pluginID, workspace: workspace.id) }
            if let instance = plugin?.instance, let bound = active.bound {
                let context = CallContext(bound: bound, caller: caller, requestID: nil)
                do {
                    try await callHook(pluginID: pluginID, hook: "disabled") { try await instance.disabled(context: context) }
                } catch {
                    // A plugin cannot veto being disabled; the failure is logged and counted.
                    logger.warning("disabled hook failed", metadata: ["plugin.id": "\(pluginID)", "workspace.id": "\(workspace.id)", "error": "\(error)"])
                }
            }
            _ = try await store.deleteEnablement(workspaceID: workspace.id, pluginID: pluginID)
            state.withLock { _ = $0.enablements.removeValue(forKey: key) }
            logger.info("plugin disabled", metadata: ["plugin.id": "\(pluginID)", "workspace.id": "\(workspace.id)"])
        }
    }

    /// `enablement` with the values of settings the manifest marks `secret` replaced, for API answers.
    public func masked(_ enablement: Enablement) -> Enablement {
        let properties = state.withLock { $0.plugins[enablement.pluginID]?.record.manifest.config.properties } ?? [:]
        var masked = enablement
        for (key, property) in properties where property.secret && masked.config[key] != nil {
            masked.config[key] = .string("********")
        }
        return masked
    }

    public func enablements(workspaceID: String) -> [Enablement] {
        state.withLock { $0.enablements.values.filter { $0.enablement.workspaceID == workspaceID }.map(\.enablement) }
            .sorted { $0.pluginID < $1.pluginID }
    }

    /// Binds an enablement to the loaded plugin: effective grants (granted and still requested), compiled
    /// routes, and storage and event services confined to the workspace.
    func activate(_ enablement: Enablement, plugin: LoadedPlugin?, workspace: Workspace?) -> ActiveEnablement {
        let grants = PermissionSet(enablement.grants.compactMap(Permission.init).filter { plugin?.requested.contains($0) ?? false })
        guard let plugin, let instance = plugin.instance, let workspace else { return ActiveEnablement(enablement: enablement, grants: grants, bound: nil) }
        let scope = StorageScope(workspaceID: workspace.id, pluginID: plugin.record.id)
        let bound = BoundPlugin(
            instance: instance, tenantID: workspace.tenantID, workspaceID: workspace.id, pluginID: plugin.record.id, grants: grants,
            config: enablement.config,
            storage: ScopedStorage(store: store, scope: scope, grants: grants, maxKeyBytes: configuration.maxKeyBytes, maxValueBytes: configuration.maxValueBytes),
            events: ScopedEvents(bus: bus, workspaceID: workspace.id, pluginID: plugin.record.id, grants: grants),
            routes: plugin.record.manifest.routes.map(CompiledRoute.init), logger: logger, requestMetrics: metrics.requests(plugin: plugin.record.id),
            timeout: timeout(of: plugin.record.manifest),
            executor: instance is RemotePlugin || grants.permissions.isDisjoint(with: [.storageRead, .storageWrite]) ? nil : store.pluginExecutor
        )
        return ActiveEnablement(enablement: enablement, grants: grants, bound: bound)
    }

    // MARK: Calls

    /// The dispatch path of a request: look up the enablement, check the manifest's route and role, and
    /// make the call's context from the parts bound at enablement. Throws the API error the caller should see.
    func prepare(workspace: Workspace, pluginID: String, method: String, path: String, caller: Caller, requestID: String) throws -> CallContext {
        let key = EnablementKey(workspaceID: workspace.id, pluginID: pluginID)
        guard let active = state.withLock({ $0.enablements[key] }) else { throw HostError.pluginNotEnabled(pluginID, workspace: workspace.id) }
        guard let bound = active.bound else {
            throw HostError.pluginUnavailable(pluginID, state.withLock { $0.plugins[pluginID]?.loadError } ?? "not loaded")
        }
        if !bound.routes.isEmpty {
            guard let route = bound.routes.first(where: { $0.matches(method: method, path: path) }) else {
                throw HostError(404, "ROUTE_NOT_FOUND", "plugin \(pluginID) has no route for \(method) \(path)")
            }
            guard caller.role >= route.minimumRole else {
                throw HostError(403, "FORBIDDEN", "\(method) \(path) of plugin \(pluginID) needs the role \(route.minimumRole.rawValue) or above")
            }
        }
        return CallContext(bound: bound, caller: caller, requestID: requestID)
    }

    /// Dispatches a request without the timeout and error mapping of ``handle(_:workspace:pluginID:caller:)``;
    /// the benchmark measures this path against a direct call.
    public func dispatch(_ request: PluginRequest, workspace: Workspace, pluginID: String, caller: Caller) async throws -> PluginResponse {
        let context = try prepare(workspace: workspace, pluginID: pluginID, method: request.method, path: request.path, caller: caller, requestID: request.requestID)
        return try await context.bound.instance.handle(request, context: context)
    }

    /// Runs a request through a plugin with the host's timeout and turns every failure into an API error:
    /// ``PluginError`` keeps its status, anything else thrown becomes 500 `PLUGIN_ERROR`.
    public func handle(_ request: PluginRequest, workspace: Workspace, pluginID: String, caller: Caller) async throws -> PluginResponse {
        let context = try prepare(workspace: workspace, pluginID: pluginID, method: request.method, path: request.path, caller: caller, requestID: request.requestID)
        let instance = context.bound.instance
        let started = ContinuousClock.now
        var status = 500
        defer { context.bound.requestMetrics.record(status: status, duration: ContinuousClock.now - started) }
        do {
            let response: PluginResponse
            if let remote = instance as? RemotePlugin {
                // The host's own code, bounded by the HTTP client's deadline: no task of its own needed.
                response = try await remote.handle(request, context: context)
            } else {
                response = try await withPluginTimeout(pluginID: pluginID, timeout: context.bound.timeout, executor: context.bound.executor, started: started) {
                    try await instance.handle(request, context: context)
                }
            }
            guard (100...599).contains(response.status) else {
                logger.error("plugin answered with an invalid status", metadata: ["plugin.id": "\(pluginID)", "request.id": "\(request.requestID)", "status": "\(response.status)"])
                metrics.recordPluginError(plugin: pluginID, kind: "error")
                throw HostError.pluginError(pluginID)
            }
            status = response.status
            return response
        } catch {
            let mapped = mapPluginFailure(error, pluginID: pluginID, workspaceID: workspace.id, requestID: request.requestID)
            status = mapped.status
            throw mapped
        }
    }

    private func mapPluginFailure(_ error: any Error, pluginID: String, workspaceID: String, requestID: String?) -> HostError {
        switch error {
        case let error as HostError:
            if error.code == "PLUGIN_TIMEOUT" { metrics.recordPluginError(plugin: pluginID, kind: "timeout") }
            return error
        case let error as PluginError:
            return HostError.from(error)
        default:
            metrics.recordPluginError(plugin: pluginID, kind: "error")
            logger.error("plugin threw", metadata: [
                "plugin.id": "\(pluginID)", "workspace.id": "\(workspaceID)", "request.id": "\(requestID ?? "-")", "error": "\(String(reflecting: error))",
            ])
            return HostError.pluginError(pluginID)
        }
    }

    private func callHook(pluginID: String, hook: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        do {
            try await withPluginTimeout(pluginID: pluginID, body)
        } catch {
            let mapped = mapPluginFailure(error, pluginID: pluginID, workspaceID: "-", requestID: nil)
            throw HostError(mapped.status, mapped.code, "the \(hook) hook of \(pluginID) failed: \(mapped.message)")
        }
    }

    /// Runs plugin code on a task of its own so that a plugin ignoring cancellation cannot hold the
    /// caller past the timeout: the caller gets 504 and the abandoned task is cancelled. The deadline is
    /// kept by ``CallWatchdog``, so a call costs no timer of its own.
    ///
    /// The task starts immediately, so a plugin that answers without suspending has run to its end when
    /// `Task.immediate` returns; its answer is taken from there, with no deadline registered and no
    /// continuation, which would suspend the caller and enqueue it again. Only a call still running then
    /// registers its deadline (counted from the call's start) and waits. With an `executor` (the store's
    /// threads, for a plugin granted storage), the task starts there instead and the caller waits.
    func withPluginTimeout<T: Sendable>(
        pluginID: String, timeout: Duration? = nil, executor: (any TaskExecutor)? = nil, started: ContinuousClock.Instant = .now,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timeout = timeout ?? self.timeout(of: pluginID)
        let call = PluginCall<T>()
        let watchdog = self.watchdog
        let run: @Sendable () async -> Void = {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            call.finish(result, watchdog: watchdog)
        }
        let task = executor.map { Task(executorPreference: $0, operation: run) } ?? Task.immediate(operation: run)
        if let result = call.takeResult() { return try result.get() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let deadline = watchdog.add(deadline: started + timeout) {
                    if call.expire(HostError.pluginTimeout(pluginID, after: timeout)) { task.cancel() }
                }
                call.wait(continuation, deadline: deadline, watchdog: watchdog)
            }
        } onCancel: {
            task.cancel()
        }
    }

    // MARK: SDK over HTTP

    /// What an SDK token reaches: the services of its plugin's enablement in its workspace.
    struct SDKBinding: Sendable {
        var claims: HostSecrets.TokenClaims
        var tenantID: String
        var workspaceID: String
        var pluginID: String
        var grants: PermissionSet
        var config: [String: JSONValue]
        var storage: ScopedStorage
        var events: ScopedEvents
    }

    /// Binds an SDK token to the enablement it names, now: a disabled plugin gets 404, and the grants are
    /// those of the token that the enablement still grants.
    func sdkBinding(_ claims: HostSecrets.TokenClaims) throws -> SDKBinding {
        let key = EnablementKey(workspaceID: claims.workspace, pluginID: claims.plugin)
        guard let active = state.withLock({ $0.enabling[key] ?? $0.enablements[key] }), let bound = active.bound, bound.tenantID == claims.tenant else {
            throw HostError.pluginNotEnabled(claims.plugin, workspace: claims.workspace)
        }
        let grants = PermissionSet(claims.grants.compactMap(Permission.init).filter(bound.grants.contains))
        let scope = StorageScope(workspaceID: bound.workspaceID, pluginID: bound.pluginID)
        return SDKBinding(
            claims: claims, tenantID: bound.tenantID, workspaceID: bound.workspaceID, pluginID: bound.pluginID, grants: grants, config: bound.config,
            storage: ScopedStorage(store: store, scope: scope, grants: grants, maxKeyBytes: configuration.maxKeyBytes, maxValueBytes: configuration.maxValueBytes),
            events: ScopedEvents(bus: bus, workspaceID: bound.workspaceID, pluginID: bound.pluginID, grants: grants)
        )
    }

    /// How long a call may run: the host's plugin timeout, or a remote's own `runtime.timeout`, which
    /// the remote call enforces itself (504 from the HTTP client's deadline); this bound then only
    /// backs it up, a second later.
    func timeout(of pluginID: String) -> Duration {
        guard let manifest = state.withLock({ $0.plugins[pluginID]?.record.manifest }) else { return configuration.pluginTimeout }
        return timeout(of: manifest)
    }

    func timeout(of manifest: PluginManifest) -> Duration {
        guard manifest.runtime.kind == .remote else { return configuration.pluginTimeout }
        return (manifest.runtime.timeout ?? configuration.pluginTimeout) + .seconds(1)
    }

    // MARK: Events

    /// One delivery of an event to one subscribing plugin.
    struct Delivery: Sendable {
        var pluginID: String
        /// How failed attempts are retried: remote plugins get the longer policy.
        var retry: HostConfiguration.RetryPolicy
        /// The remote plugin, to record a delivery that was given up.
        var remote: RemotePlugin?
        var deliver: @Sendable () async throws -> Void
    }

    /// The deliveries an event gets: plugins enabled in its workspace that subscribe to its type and
    /// hold a matching subscribe grant.
    func deliveries(of event: PluginEvent) -> [Delivery] {
        let targets = state.withLock { state in
            state.enablements.compactMap { key, active -> (BoundPlugin, PluginManifest)? in
                guard key.workspaceID == event.workspaceID, let bound = active.bound, let plugin = state.plugins[key.pluginID] else { return nil }
                return (bound, plugin.record.manifest)
            }
        }
        return targets.compactMap { bound, manifest in
            guard manifest.subscribes(to: event.type), bound.grants.allowsReceiving(event.type) else { return nil }
            let context = CallContext(bound: bound, caller: Self.hostCaller, requestID: nil)
            let id = bound.pluginID
            let remote = bound.instance as? RemotePlugin
            let key = EnablementKey(workspaceID: event.workspaceID, pluginID: id)
            return Delivery(pluginID: id, retry: remote == nil ? configuration.eventRetry : configuration.remote.eventRetry, remote: remote) { [self] in
                // A retry after the plugin was disabled in the workspace has nothing to deliver to.
                guard state.withLock({ $0.enablements[key]?.bound != nil }) else { return }
                try await withPluginTimeout(pluginID: id, timeout: bound.timeout, executor: bound.executor) {
                    try await bound.instance.handle(event: event, context: context)
                }
            }
        }
    }

    static let hostCaller = Caller(subject: "host", role: .platformAdmin)
}
