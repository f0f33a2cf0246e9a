import Foundation
import Logging
import NIOPosix
import PluginSDK
import Synchronization

/// The host's plugin runtime, put together: the ``PluginRegistry`` every call reads, the
/// ``Administration`` that changes it, the ``Dispatcher`` that calls plugins for requests, the
/// ``EventRouter`` that finds an event's subscribers, and the ``PluginLauncher`` that makes a runner
/// for each installed plugin. It starts them (``bootstrap()``), opens the API once the registry is
/// read (``isReady``), and shuts the plugins down.
public final class PluginRuntime: Sendable {
    public let configuration: HostConfiguration
    let store: any HostStore
    let registry: PluginRegistry
    let administration: Administration
    let dispatcher: Dispatcher
    let idempotency: Idempotency
    let events: EventRouter
    /// Where publishes are stored and their subscribers woken.
    let outbox: EventOutbox
    /// This host process's name in the leases of event lanes: kept in the data folder, so that a host
    /// restarted on it takes its lanes back at once.
    let hostID: String
    let launcher: PluginLauncher
    let metrics: HostMetrics
    let logger: Logger
    let watchdog: CallWatchdog
    /// The HTTP client, key and callback URL of remote plugins.
    let remote: RemoteServices
    /// Serialises registry changes: administration and the registry sync.
    let adminLock: AsyncMutex
    private let readiness = Atomic<Bool>(false)

    /// Whether the registry has been read from the store; until then `/ready` and the API answer 503.
    public var isReady: Bool { readiness.load(ordering: .acquiring) }

    init(
        configuration: HostConfiguration, store: any HostStore, loader: PluginLibraryLoader, metrics: HostMetrics, secrets: HostSecrets,
        logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.metrics = metrics
        self.logger = logger
        let watchdog = CallWatchdog()
        self.watchdog = watchdog
        let adminLock = AsyncMutex()
        self.adminLock = adminLock
        let remote = RemoteServices(configuration: configuration.remote, secrets: secrets, store: store, host: configuration, logger: logger)
        self.remote = remote
        let outbox = EventOutbox(store: store, wakeups: EventWakeups(shared: store.eventNotices != nil), metrics: metrics)
        self.outbox = outbox
        self.hostID = HostIdentity.load(folder: configuration.dataDirectory)
        let registry = PluginRegistry(store: store, outbox: outbox, configuration: configuration, metrics: metrics, logger: logger)
        self.registry = registry
        let failures = PluginFailures(metrics: metrics, logger: logger)
        let workers = WorkerServices(
            configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, watchdog: watchdog, metrics: metrics, logger: logger)
        let bundles = PluginBundles(store: store, folder: configuration.dataDirectory + "/bundles", trustedKeys: configuration.trustedKeys)
        let launcher = PluginLauncher(
            loader: loader, remote: remote, workers: workers, watchdog: watchdog, configuration: configuration, storeExecutor: store.pluginExecutor, metrics: metrics, logger: logger,
            bundles: bundles
        )
        self.launcher = launcher
        self.administration = Administration(
            registry: registry, store: store, launcher: launcher, bundles: bundles, validator: ManifestValidator(inspector: loader.inspector), remote: remote,
            failures: failures, watchdog: watchdog, lock: adminLock, logger: logger
        )
        self.idempotency = Idempotency(store: store, retention: configuration.idempotencyRetention, logger: logger)
        self.dispatcher = Dispatcher(registry: registry, failures: failures, maxResponseBytes: configuration.maxResponseSize)
        self.events = EventRouter(registry: registry, watchdog: watchdog)
    }

    /// A runtime without the HTTP layer, on `store`, with the plugins `store` holds loaded: for
    /// embedding the host in another process and for benchmarks of the dispatch path. Plugin call
    /// timeouts need ``CallWatchdogService`` running on ``watchdog``, as `buildApplication` does.
    package static func standalone(configuration: HostConfiguration, store: any HostStore, logger: Logger) async throws -> PluginRuntime {
        let runtime = PluginRuntime(
            configuration: configuration, store: store, loader: PluginLibraryLoader(), metrics: HostMetrics(),
            secrets: try HostSecrets.load(configured: configuration.remote.secretKey, folder: configuration.dataDirectory), logger: logger
        )
        try await store.prepare()
        try await runtime.bootstrap()
        runtime.markReady()
        return runtime
    }

    /// Loads what the store holds. A plugin that cannot be started stays installed but unavailable (503
    /// `PLUGIN_UNAVAILABLE`, reason in `GET /v1/plugins/{id}`); the host starts anyway.
    func bootstrap() async throws {
        let snapshot = try await store.registry()
        var plugins: [String: PluginRegistry.Installed] = [:]
        for record in snapshot.plugins { plugins[record.id] = await launcher.launch(stored: record) }
        var workspaces: [String: Workspace] = [:]
        for workspace in snapshot.workspaces { workspaces[workspace.id] = workspace }
        registry.replace(plugins: plugins, workspaces: workspaces, enablements: snapshot.enablements)
        // Workers of plugins in use start now, in the background: the host does not wait for them.
        let inUse = Set(snapshot.enablements.map(\.pluginID))
        for (id, plugin) in plugins where inUse.contains(id) {
            guard let runner = plugin.runner else { continue }
            Task { [logger] in
                do {
                    try await runner.start()
                } catch {
                    logger.error("plugin could not be started", metadata: ["plugin.id": "\(id)", "error": "\(error)"])
                }
            }
        }
    }

    /// Opens the API: called once the registry is loaded and the admin token and manifests are in place.
    func markReady() {
        readiness.store(true, ordering: .releasing)
    }

    /// Calls every running plugin's shutdown hook, each bounded by its call limit (and stops workers).
    package func shutdown() async {
        for runner in registry.runners() {
            do {
                try await watchdog.call(pluginID: runner.id, timeout: runner.callLimit) { await runner.shutdown() }
            } catch {
                logger.warning("plugin shutdown hook did not finish", metadata: ["plugin.id": "\(runner.id)", "error": "\(error)"])
            }
        }
        await remote.shutdown()
    }
}
