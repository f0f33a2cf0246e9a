import Foundation
import Logging
import PluginSDK

/// What platform and tenant admins change: plugins (install, upgrade, uninstall, a remote's install
/// secret), tenants and workspaces, and enablements. Each change is checked, written to the store, then
/// applied to the registry, under one lock so that changes (and a registry sync) never interleave; a
/// change that fails leaves nothing behind.
struct Administration: Sendable {
    let registry: PluginRegistry
    let store: any HostStore
    let launcher: PluginLauncher
    let bundles: PluginBundles
    let validator: ManifestValidator
    let remote: RemoteServices
    let failures: PluginFailures
    let watchdog: CallWatchdog
    let lock: AsyncMutex
    let logger: Logger

    // MARK: Plugins

    /// Validates a manifest and its library, loads it and records the installation; all or nothing.
    /// Installing a higher version of an installed id upgrades it in place; a lower one is refused.
    /// `isolation`, the platform admin's choice at install, overrides the manifest's for a library plugin.
    /// A host with trusted keys installs signed bundles only.
    func install(manifestText: String, baseDirectory: String, isolation: PluginManifest.Runtime.Isolation? = nil) async throws -> PluginStatus {
        if bundles.requiresSignatures {
            throw HostError.untrustedBundle(
                "this host installs only bundles signed by its trusted keys (\(bundles.trustedKeys?.directory ?? "")), not a manifest; make one with plugin-host pack --sign KEY")
        }
        return try await install(manifestText: manifestText, baseDirectory: baseDirectory, library: nil, bundle: nil, isolation: isolation)
    }

    /// Installs a plugin bundle: checked whole (checksums, signature, manifest, library) before anything
    /// is written, then kept in the store by its SHA-256, and loaded from this host's own copy.
    func install(bundle bytes: Data, isolation: PluginManifest.Runtime.Isolation? = nil) async throws -> PluginStatus {
        let verified = try bundles.verify(bytes)
        // Unpacked into the cache (named by the bundle's checksum) so that the library can be checked and
        // loaded; nothing reaches the store or the registry unless all of it passes.
        let library = try bundles.unpack(verified)
        do {
            return try await install(
                manifestText: verified.manifestText, baseDirectory: bundles.folder + "/" + verified.sha256, library: library, bundle: verified, isolation: isolation)
        } catch HostError.invalidManifest(let problems) where library == nil && problems.contains(where: { $0.hasPrefix("runtime.path") }) {
            // A library plugin's manifest, whose library would be looked for beside the bundle's copy.
            throw HostError.invalidBundle("its manifest is a library plugin's, but it holds no library; pack it with plugin-host pack from the plugin's package")
        }
    }

    private func install(
        manifestText: String, baseDirectory: String, library: String?, bundle: PluginBundles.Verified?, isolation: PluginManifest.Runtime.Isolation?
    ) async throws -> PluginStatus {
        try await lock.withLock {
            let validated: ManifestValidator.Validated
            switch validator.validate(text: manifestText, baseDirectory: baseDirectory, library: library, installedVersion: { registry.installed($0)?.record.manifest.version }) {
            case .success(let value): validated = value
            case .failure(let errors): throw HostError.invalidManifest(problems: errors.problems.map(\.description))
            }
            var manifest = validated.manifest
            if let bundle {
                guard (manifest.runtime.kind == .library) == (bundle.bundle.library != nil) else {
                    throw HostError.invalidBundle(manifest.runtime.kind == .library
                        ? "its manifest is a library plugin's, but it holds no library" : "it holds a library, but its manifest is a remote plugin's")
                }
                // Checked against the file at every load from now on.
                if manifest.runtime.kind == .library { manifest.runtime.sha256 = bundle.bundle.librarySHA256 }
            }
            if let isolation {
                guard manifest.runtime.kind == .library else {
                    throw HostError.invalidInput("isolation applies to library plugins; \(manifest.id) is a remote plugin")
                }
                manifest.runtime.isolation = isolation
            }
            if let installed = registry.installed(manifest.id)?.record.manifest.runtime.kind, installed != manifest.runtime.kind {
                throw HostError.runtimeKindChanged(plugin: manifest.id, installed: installed.rawValue, manifest: manifest.runtime.kind.rawValue)
            }
            let runner: any RunningPlugin
            do {
                runner = try launcher.launch(manifest, inspection: validated.inspection)
            } catch {
                throw HostError.libraryNotLoaded("\(error)")
            }
            // An upgrade of a plugin in use has its new runner ready before calls switch to it.
            if registry.plugin(id: manifest.id)?.enabledIn.isEmpty == false {
                do {
                    try await runner.start()
                } catch {
                    await runner.shutdown()
                    throw HostError.libraryNotLoaded("\(error)")
                }
            }
            let installSecret: String?
            let record = InstalledPluginRecord(manifest: manifest, sha256: validated.inspection?.sha256 ?? "", installedAt: Date(), bundle: bundle?.sha256)
            do {
                // The bundle first: another host that reads the plugin's record finds its bundle.
                if let bundle { try await bundles.keep(bundle) }
                installSecret = try await makeInstallSecret(for: manifest)
                try await store.installPlugin(record)
            } catch {
                // Nothing is installed: the new runner (a worker it started) goes too.
                await runner.shutdown()
                throw error
            }
            let previous = registry.state.withLock { state -> PluginRegistry.Installed? in
                let previous = state.plugins[manifest.id]
                let installed = PluginRegistry.Installed(record: record, runner: runner, loadError: nil, requested: manifest.requestedPermissions)
                state.plugins[manifest.id] = installed
                for (key, active) in state.enablements where key.pluginID == manifest.id {
                    state.enablements[key] = registry.bind(active.enablement, plugin: installed, workspace: state.workspaces[key.workspaceID])
                }
                return previous
            }
            if let old = previous?.runner { await old.shutdown() }
            if previous?.record.bundle != nil { try? await store.deleteUnusedBundles() }
            logger.info("plugin installed", metadata: [
                "plugin.id": "\(manifest.id)", "plugin.version": "\(manifest.version)", "runtime.kind": "\(manifest.runtime.kind.rawValue)",
                "bundle": "\(bundle.map { "\($0.sha256)" + ($0.bundle.signature.map { " signed by \($0.keyID)" } ?? " unsigned") } ?? "none")"])
            // Registered above under the admin lock, which an uninstall or a resync would also need.
            var status = registry.plugin(id: manifest.id)!
            status.installSecret = installSecret
            return status
        }
    }

    /// A remote plugin's new install secret, shown once: a new install gets one, an upgrade keeps the
    /// one the remote has. `nil` for other plugins and for upgrades.
    private func makeInstallSecret(for manifest: PluginManifest) async throws -> String? {
        guard manifest.runtime.kind == .remote else { return nil }
        let key = RemoteServices.installSecretKey(plugin: manifest.id)
        if registry.installed(manifest.id) != nil, try await remote.secret(key) != nil { return nil }
        let secret = RemoteEnvelope.newSecret()
        try await remote.setSecret(key, secret)
        return secret
    }

    /// Removes a plugin that no workspace has enabled. Its workspaces' data stays in the store.
    func uninstall(id: String) async throws {
        try await lock.withLock {
            guard let plugin = registry.plugin(id: id) else { throw HostError.pluginNotFound(id) }
            guard plugin.enabledIn.isEmpty else { throw HostError.pluginInUse(id, workspaces: plugin.enabledIn) }
            _ = try await store.deletePlugin(id: id)
            if plugin.record.bundle != nil { try? await store.deleteUnusedBundles() }
            if plugin.record.manifest.runtime.kind == .remote { try await remote.setSecret(RemoteServices.installSecretKey(plugin: id), nil) }
            let removed = registry.state.withLock { $0.plugins.removeValue(forKey: id) }
            // An in-process library stays mapped: code containing Swift metadata is never unloaded.
            if let runner = removed?.runner { await runner.shutdown() }
            logger.info("plugin uninstalled", metadata: ["plugin.id": "\(id)"])
        }
    }

    /// Replaces a remote plugin's install secret; the answer is the only time the new one is shown. The
    /// remote needs it before the next `enabled` call (including a resumed one after it restarts).
    func rotateInstallSecret(id: String) async throws -> String {
        try await lock.withLock {
            guard let plugin = registry.plugin(id: id) else { throw HostError.pluginNotFound(id) }
            guard plugin.record.manifest.runtime.kind == .remote else { throw HostError.notARemotePlugin(id) }
            let secret = RemoteEnvelope.newSecret()
            try await remote.setSecret(RemoteServices.installSecretKey(plugin: id), secret)
            logger.info("install secret rotated", metadata: ["plugin.id": "\(id)"])
            return secret
        }
    }

    /// Lets a plugin whose worker was quarantined run again, with its crash count cleared. A plugin
    /// that is not quarantined is left as it is.
    func liftQuarantine(id: String) async throws {
        guard let plugin = registry.installed(id) else { throw HostError.pluginNotFound(id) }
        if plugin.runner?.liftQuarantine() == true {
            logger.info("plugin quarantine lifted", metadata: ["plugin.id": "\(id)"])
        }
    }

    // MARK: Tenancy

    func createTenant(id: String, name: String) async throws -> Tenant {
        try Self.checkIdentifier(id, field: "id")
        try Self.checkName(name)
        let tenant = Tenant(id: id, name: name, createdAt: Date())
        do {
            try await store.createTenant(tenant)
        } catch let error as StoreError where error.code == .alreadyExists {
            throw HostError.tenantExists(id)
        }
        return tenant
    }

    func createWorkspace(id: String, name: String, tenantID: String) async throws -> Workspace {
        try Self.checkIdentifier(id, field: "id")
        try Self.checkName(name)
        guard try await store.tenant(id: tenantID) != nil else { throw HostError.tenantNotFound(tenantID) }
        let workspace = Workspace(id: id, tenantID: tenantID, name: name, createdAt: Date())
        // Under the admin lock, so a registry resync running meanwhile cannot overwrite it.
        try await lock.withLock {
            do {
                try await store.createWorkspace(workspace)
            } catch let error as StoreError where error.code == .alreadyExists {
                throw HostError.workspaceExists(id)
            }
            registry.state.withLock { $0.workspaces[id] = workspace }
        }
        await publishHostEvent(HostEvents.workspaceCreated, in: id, ["workspaceId": .string(id), "tenantId": .string(tenantID), "name": .string(name)])
        return workspace
    }

    static func checkName(_ name: String) throws(HostError) {
        guard (1...200).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidInput("name must be 1 to 200 characters without control characters")
        }
    }

    /// Tenant and workspace ids go into URL paths: `.` and `..` (which clients resolve away) and ids
    /// that read as options on a command line (`-x`) are refused by asking for a letter or digit first.
    static func checkIdentifier(_ id: String, field: String) throws(HostError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
        guard (1...64).contains(id.count), id.allSatisfy(allowed.contains), let first = id.first, first.isLetter || first.isNumber else {
            throw .invalidInput("\(field) \"\(id)\" must be 1 to 64 characters of [a-z0-9-_.], starting with a letter or digit")
        }
    }

    // MARK: Enablement

    /// Enables (or re-configures) a plugin in a workspace: grants must be a subset of what it requests,
    /// config must fit its schema, and its `enabled` hook must succeed; otherwise nothing changes.
    /// Enables a plugin in a workspace, or changes its grants and config there. Grants or config left out
    /// (`nil`) keep what the enablement has (none for a new one): changing the config alone does not
    /// take the grants away.
    func enable(workspace: Workspace, pluginID: String, grants: [String]?, config: [String: JSONValue]?, caller: Caller) async throws -> Enablement {
        try await lock.withLock {
            guard let plugin = registry.installed(pluginID) else { throw HostError.pluginNotFound(pluginID) }
            // What is kept is read from the store (another host may have changed it), and only the grants
            // the installed version still requests are kept.
            let existing = grants == nil || config == nil ? try await store.enablement(workspaceID: workspace.id, pluginID: pluginID) : nil
            let grants = grants ?? existing?.grants.filter { Permission($0).map(plugin.requested.contains) ?? false } ?? []
            let config = config ?? existing?.config ?? [:]
            guard let runner = plugin.runner else { throw HostError.pluginUnavailable(plugin: pluginID, why: plugin.loadError ?? "not loaded") }
            let unknown = grants.filter { Permission($0) == nil }
            if !unknown.isEmpty { throw HostError.unknownPermissions(unknown) }
            let notRequested = grants.filter { !plugin.requested.contains(Permission($0)!) }  // parsed above
            if !notRequested.isEmpty {
                throw HostError.permissionsNotRequested(plugin: pluginID, requested: plugin.record.manifest.permissions, asked: notRequested)
            }
            let checkedConfig: [String: JSONValue]
            switch plugin.record.manifest.config.validate(config) {
            case .success(let value): checkedConfig = value
            case .failure(let errors): throw HostError.invalidConfig(errors.problems)
            }
            // A remote plugin's config travels in a header of every call.
            if plugin.record.manifest.runtime.kind == .remote, case let size = RemoteEnvelope.configSize(checkedConfig), size > RemoteEnvelope.maximumConfigBytes {
                throw HostError.remoteConfigTooLarge(bytes: size, limit: RemoteEnvelope.maximumConfigBytes)
            }
            let enablement = Enablement(workspaceID: workspace.id, pluginID: pluginID, grants: Array(Set(grants)).sorted(), config: checkedConfig, updatedAt: Date())
            let active = registry.bind(enablement, plugin: plugin, workspace: workspace)
            let bound = active.bound!  // bound: the plugin runs and the workspace is there
            let context = CallContext(bound: bound, caller: caller, requestID: nil)
            let key = PluginRegistry.EnablementKey(workspaceID: workspace.id, pluginID: pluginID)
            registry.state.withLock { $0.enabling[key] = active }
            defer { registry.state.withLock { _ = $0.enabling.removeValue(forKey: key) } }
            // A worker is started first, so that its start does not count against the hook's time limit.
            try await runner.start()
            try await failures.hook("enabled", of: bound, watchdog: watchdog) { try await runner.enabled(context: context) }
            try await store.putEnablement(enablement)
            // Its lane of events starts here: it gets what is published from now on, its own
            // core.plugin.enabled included.
            if !plugin.record.manifest.subscriptions.isEmpty {
                try await store.createEventLane(workspaceID: workspace.id, pluginID: pluginID)
            }
            registry.state.withLock { $0.enablements[key] = active }
            logger.info("plugin enabled", metadata: ["plugin.id": "\(pluginID)", "workspace.id": "\(workspace.id)", "grants": "\(enablement.grants)"])
            await publishHostEvent(HostEvents.pluginEnabled, in: workspace.id, ["pluginId": .string(pluginID), "grants": .array(enablement.grants.map(JSONValue.string))])
            return enablement
        }
    }

    /// Disables a plugin in a workspace after its `disabled` hook; its data is kept.
    func disable(workspace: Workspace, pluginID: String, caller: Caller) async throws {
        try await lock.withLock {
            let key = PluginRegistry.EnablementKey(workspaceID: workspace.id, pluginID: pluginID)
            guard let active = registry.state.withLock({ $0.enablements[key] }) else { throw HostError.pluginNotEnabled(plugin: pluginID, workspace: workspace.id) }
            if let bound = active.bound {
                let context = CallContext(bound: bound, caller: caller, requestID: nil)
                do {
                    try await failures.hook("disabled", of: bound, watchdog: watchdog) { try await bound.runner.disabled(context: context) }
                } catch {
                    // A plugin cannot veto being disabled; the failure is logged and counted.
                    logger.warning("disabled hook failed", metadata: ["plugin.id": "\(pluginID)", "workspace.id": "\(workspace.id)", "error": "\(error)"])
                }
            }
            _ = try await store.deleteEnablement(workspaceID: workspace.id, pluginID: pluginID)
            // Events published while it is disabled are not for it: enabled again, it starts afresh.
            try await store.deleteEventLane(workspaceID: workspace.id, pluginID: pluginID)
            registry.state.withLock { _ = $0.enablements.removeValue(forKey: key) }
            logger.info("plugin disabled", metadata: ["plugin.id": "\(pluginID)", "workspace.id": "\(workspace.id)"])
            await publishHostEvent(HostEvents.pluginDisabled, in: workspace.id, ["pluginId": .string(pluginID)])
        }
    }

    /// An event of the host's into a workspace, for the plugins enabled there that subscribe to it and
    /// hold the grant. It is stored after the change it reports, which is done whether or not the event
    /// can be stored (a failure is logged).
    private func publishHostEvent(_ type: String, in workspaceID: String, _ payload: [String: JSONValue]) async {
        let event = PluginEvent(
            id: UUID().uuidString.lowercased(), type: type, workspaceID: workspaceID, sourcePluginID: HostEvents.source, occurredAt: Date(),
            payload: (try? JSONEncoder().encode(JSONValue.object(payload))) ?? Data("{}".utf8))
        do {
            try await registry.outbox.publish(event)
        } catch {
            logger.error("host event not published", metadata: ["event.type": "\(type)", "workspace.id": "\(workspaceID)", "error": "\(error)"])
        }
    }
}
