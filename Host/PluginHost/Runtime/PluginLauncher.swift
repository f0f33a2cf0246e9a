import Logging
import PluginSDK

/// Makes the runner of an installed plugin: for a library plugin, checks its file again and loads it
/// into this process or hands it to a worker process (its isolation); for a remote plugin, its HTTP
/// client side. The one place that knows which runner
/// a manifest's `runtime.kind` gets.
struct PluginLauncher: Sendable {
    let loader: PluginLibraryLoader
    let remote: RemoteServices
    let workers: WorkerServices
    let watchdog: CallWatchdog
    let configuration: HostConfiguration
    let storeExecutor: (any TaskExecutor)?
    let metrics: HostMetrics
    let logger: Logger
    let bundles: PluginBundles

    /// ``launch(_:)`` of a plugin read from the store, from this host's copy of its bundle if it came in
    /// one (fetched from the store and checked again first; one that fails the checks stays installed
    /// but unavailable, with the reason).
    func launch(stored record: InstalledPluginRecord) async -> PluginRegistry.Installed {
        do {
            return launch(try await bundles.localize(record))
        } catch {
            logger.error("installed plugin's bundle could not be used", metadata: ["plugin.id": "\(record.id)", "error": "\(error)"])
            return PluginRegistry.Installed(record: record, runner: nil, loadError: String(describing: error), requested: record.manifest.requestedPermissions)
        }
    }

    /// The runner of a plugin read from the store (at start, or installed by another host). Its library
    /// is checked again as at install (the magic block, and the manifest's `runtime.sha256` when it pins
    /// one); one that no longer passes stays installed but unavailable, with the reason.
    private func launch(_ record: InstalledPluginRecord) -> PluginRegistry.Installed {
        let manifest = record.manifest
        var installed = PluginRegistry.Installed(record: record, runner: nil, loadError: nil, requested: manifest.requestedPermissions)
        do {
            var inspection: LibraryInspector.Inspection?
            if manifest.runtime.kind == .library {
                let checked = try loader.inspect(path: manifest.runtime.resolvedPath)
                guard checked.magic.pluginID == manifest.id, checked.magic.pluginVersion == manifest.version else {
                    throw LoadError(path: manifest.runtime.resolvedPath, pluginID: manifest.id, reason: .magicUnreadable(
                        "the library now declares \(checked.magic.pluginID) \(checked.magic.pluginVersion), installed was \(manifest.id) \(manifest.version)"))
                }
                if let pinned = manifest.runtime.sha256, pinned != checked.sha256 {
                    throw LoadError(path: manifest.runtime.resolvedPath, pluginID: manifest.id, reason: .digestMismatch(pinned: pinned, found: checked.sha256))
                }
                inspection = checked
            }
            installed.runner = try launch(manifest, inspection: inspection)
        } catch {
            installed.loadError = String(describing: error)
            logger.error("installed plugin could not be loaded", metadata: ["plugin.id": "\(manifest.id)", "error": "\(error)"])
        }
        return installed
    }

    /// The runner of a manifest that passed validation; `inspection` is what the validator read of a
    /// library plugin's file.
    func launch(_ manifest: PluginManifest, inspection: LibraryInspector.Inspection?) throws -> any RunningPlugin {
        switch manifest.runtime.kind {
        case .remote:
            return RemotePlugin(manifest: manifest, services: remote)
        case .library:
            guard let inspection else { throw LoadError(path: manifest.runtime.resolvedPath, pluginID: manifest.id, reason: .notFound) }
            // In a worker, the library is loaded there (checked again by the worker) and never here.
            if (manifest.runtime.isolation ?? configuration.workers.defaultIsolation) == .worker {
                return WorkerPlugin(manifest: manifest, services: workers)
            }
            let started = ContinuousClock.now
            let instance = try loader.load(path: manifest.runtime.resolvedPath, inspection: inspection)
            metrics.recordLoad(plugin: manifest.id, duration: ContinuousClock.now - started)
            return LibraryPlugin(
                id: manifest.id, instance: instance, timeout: configuration.pluginTimeout, eventRetry: configuration.eventRetry,
                watchdog: watchdog, storeExecutor: storeExecutor
            )
        }
    }
}
