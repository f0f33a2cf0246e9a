import Foundation
import Hummingbird
import Logging
import NIOCore
import PluginSDK
import ServiceLifecycle

/// Builds a plugin host: opens the store, loads installed plugins, installs the manifests folder, and
/// wires the HTTP API. `plugin-host serve` and the tests both start hosts through this one function.
///
/// - Parameters:
///   - announceAdminToken: receives the platform admin token when this call generated it (first start
///     without a configured token); it is stored hashed and never logged.
///   - onServerRunning: receives the bound port once the server listens.
public func buildApplication(
    configuration: HostConfiguration,
    logger: Logger = Logger(label: "plugin-host"),
    announceAdminToken: @escaping @Sendable (String) -> Void = { _ in },
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    // PostgreSQL may be unreachable at start: the server comes up anyway, answers 503 on `/ready` and the
    // API, and `StoreSupervisor` connects with backoff. The embedded store opens here or not at all.
    let store: any HostStore & Service
    if let postgres = configuration.postgres {
        store = PostgresStore(configuration: postgres, logger: logger)
    } else {
        store = try await SQLiteStore.open(folder: configuration.dataDirectory)
    }
    do {
        let metrics = HostMetrics()
        let secrets = try HostSecrets.load(configured: configuration.remote.secretKey, folder: configuration.dataDirectory)
        let runtime = PluginRuntime(
            configuration: configuration, store: store, loader: PluginLibraryLoader(), metrics: metrics, secrets: secrets, logger: logger
        )
        var storeServices: [any Service] = [store]
        if configuration.postgres != nil {
            storeServices.append(StoreSupervisor(runtime: runtime, configuration: configuration, announceAdminToken: announceAdminToken, logger: logger))
        } else {
            try await runtime.bootstrap()
            try await TokenAdministration.ensureAdminToken(configuration: configuration, store: store, announce: announceAdminToken, logger: logger)
            if let folder = configuration.manifestsDirectory {
                await installManifests(in: folder, runtime: runtime, logger: logger)
            }
            runtime.markReady()
        }

        let authenticator = Authenticator(store: store)
        let middleware = HostMiddleware(everyRoute: [ErrorMiddleware()], v1: [AuthMiddleware(authenticator: authenticator, runtime: runtime)])
        let resources = ResourceController(runtime: runtime)
        let router = Router(context: HostRequestContext.self)
        let v1 = middleware.install(on: router)
        HealthController(runtime: runtime, metrics: metrics).addRoutes(to: router)
        SDKController(runtime: runtime).addRoutes(to: router)
        let tokens = TokenAdministration(store: store, registry: runtime.registry, authenticator: authenticator, logger: logger)
        AdminController(runtime: runtime, store: store, tokens: tokens).addRoutes(to: v1)
        resources.addRoutes(to: v1)

        return Application(
            // The resource route's usual paths are matched ahead of the router, through the same middlewares.
            responder: HostResponder(router: router.buildResponder(), middleware: middleware, resources: resources),
            server: .http1(configuration: .init(
                additionalChannelHandlers: [ConnectionGuard(bodyTimeout: TimeAmount(configuration.readTimeout))],
                idleTimeout: TimeAmount(configuration.readTimeout)
            )),
            configuration: .init(address: .hostname(configuration.hostname, port: configuration.port), serverName: "plugin-host"),
            services: storeServices + [
                // Shut down in reverse: server, health checks, event delivery (each lane finishes the
                // delivery it is making; what is not delivered stays in the store), plugin shutdown hooks
                // and the remotes' HTTP client, then the watchdog that bounds those hooks, then the
                // registry sync and the store.
                CallWatchdogService(watchdog: runtime.watchdog), PluginSupervisor(runtime: runtime),
                EventDelivery(runtime: runtime, logger: logger), PluginHealthService(runtime: runtime),
            ],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                runtime.remote.serverRunning(port: port)
                await onServerRunning(port)
            },
            logger: logger
        )
    } catch {
        await store.close()
        throw error
    }
}

/// Calls the plugins' shutdown hooks once the HTTP server has drained its in-flight requests (services
/// shut down in reverse order, and the server is the last one added).
struct PluginSupervisor: Service {
    let runtime: PluginRuntime

    func run() async throws {
        try? await gracefulShutdown()
        await runtime.shutdown()
    }
}

/// Installs every manifest of `folder` whose id and version are not installed yet. A bad manifest is
/// logged with all its problems and skipped; the host starts with the others.
func installManifests(in folder: String, runtime: PluginRuntime, logger: Logger) async {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json")) && !$0.hasSuffix(".schema.json") }
        .sorted()
    // A host that takes signed bundles only takes no manifest: say so once, not once per file.
    if let keys = runtime.configuration.trustedKeys, !files.isEmpty {
        logger.warning("manifests folder not installed: this host installs only bundles signed by its trusted keys", metadata: [
            "manifests": "\(folder)", "trusted.keys": "\(keys.directory)"])
        return
    }
    for file in files {
        let path = URL(fileURLWithPath: folder).appendingPathComponent(file).path
        do {
            let text = try ManifestValidator.read(file: path)
            let status = try await runtime.install(manifestText: text, baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent().path)
            if status.installSecret != nil {
                // Not shown here: logs are no place for a secret. The admin makes a new one to hand over.
                logger.notice("remote plugin installed from the manifests folder; make its install secret with POST /v1/plugins/\(status.record.id)/install-secret",
                              metadata: ["plugin.id": "\(status.record.id)"])
            }
        } catch HostError.invalidManifest(let problems) where !problems.isEmpty && problems.allSatisfy({ $0.contains("is already installed") }) {
            continue
        } catch HostError.invalidManifest(let problems) {
            logger.error("manifest not installed", metadata: ["manifest": "\(path)", "problems": "\(problems.joined(separator: "; "))"])
        } catch let error as ManifestErrors {
            logger.error("manifest not installed", metadata: ["manifest": "\(path)", "problems": "\(error.problems.map(\.description).joined(separator: "; "))"])
        } catch {
            logger.error("manifest not installed", metadata: ["manifest": "\(path)", "error": "\(error)"])
        }
    }
}
