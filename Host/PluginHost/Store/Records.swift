import Foundation
import PluginSDK

/// A plugin installed on the host.
public struct InstalledPluginRecord: Sendable, Hashable, Codable {
    public var manifest: PluginManifest
    public var sha256: String
    public var installedAt: Date
    /// The SHA-256 of the bundle it was installed from (kept in the store's `bundles`); `nil` when it was
    /// installed from a manifest naming a file on the host's disk.
    public var bundle: String?
    public var id: String { manifest.id }

    public init(manifest: PluginManifest, sha256: String, installedAt: Date, bundle: String? = nil) {
        self.manifest = manifest
        self.sha256 = sha256
        self.installedAt = installedAt
        self.bundle = bundle
    }
}

public struct Tenant: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var createdAt: Date
}

public struct Workspace: Sendable, Hashable, Codable {
    public var id: String
    public var tenantID: String
    public var name: String
    public var createdAt: Date
}

/// An API token as stored: only the SHA-256 of the secret is kept.
public struct TokenRecord: Sendable, Hashable {
    /// A public, non-secret id for listing and revoking.
    public var id: String
    public var secretHash: String
    public var role: CallerRole
    public var subject: String
    /// `nil` for platform admins.
    public var tenantID: String?
    /// For members: the workspaces they may use.
    public var workspaces: [String]
    public var createdAt: Date

    public init(id: String, secretHash: String, role: CallerRole, subject: String, tenantID: String?, workspaces: [String], createdAt: Date) {
        self.id = id
        self.secretHash = secretHash
        self.role = role
        self.subject = subject
        self.tenantID = tenantID
        self.workspaces = workspaces
        self.createdAt = createdAt
    }
}

/// A plugin enabled in a workspace, with what was granted and configured there.
public struct Enablement: Sendable, Hashable, Codable {
    public var workspaceID: String
    public var pluginID: String
    public var grants: [String]
    public var config: [String: JSONValue]
    public var updatedAt: Date
}

/// The registry as one consistent read: what the host loads at start and re-reads to follow other hosts.
public struct RegistrySnapshot: Sendable {
    public var plugins: [InstalledPluginRecord]
    public var workspaces: [Workspace]
    public var enablements: [Enablement]
}

/// The one (workspace, plugin) pair plugin storage calls are confined to.
/// One `Idempotency-Key` of one caller for one plugin in one workspace.
public struct IdempotencyScope: Sendable, Hashable {
    public var workspaceID: String
    public var pluginID: String
    /// The caller's API token id: another token's same key is another key.
    public var caller: String
    public var key: String

    public init(workspaceID: String, pluginID: String, caller: String, key: String) {
        self.workspaceID = workspaceID
        self.pluginID = pluginID
        self.caller = caller
        self.key = key
    }

    var storage: StorageScope { StorageScope(workspaceID: workspaceID, pluginID: pluginID) }
}

/// What the store holds for an idempotency key: the request it was first used for (a hash), and the
/// plugin's answer once there is one.
public struct IdempotencyRecord: Sendable {
    public var requestHash: String
    /// `nil` while the first request is still running.
    public var response: PluginResponse?
}

public struct StorageScope: Sendable, Hashable {
    public var workspaceID: String
    public var pluginID: String

    public init(workspaceID: String, pluginID: String) {
        self.workspaceID = workspaceID
        self.pluginID = pluginID
    }
}
