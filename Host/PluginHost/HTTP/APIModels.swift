import Foundation
import PluginSDK

/// The JSON bodies of the admin API (documented in openapi.yaml).
enum API {
    struct PluginView: Codable, Sendable {
        var id: String
        var name: String
        var version: String
        var description: String
        var sdk: String
        var runtime: Runtime
        var permissions: [String]
        var subscriptions: [String]
        var routes: [PluginManifest.Route]
        var config: ConfigSchema
        var status: String
        var loadError: String?
        var enabledIn: [String]
        var installedAt: Date
        /// The SHA-256 of the bundle it was installed from; absent when installed from a manifest.
        var bundle: String?
        /// A remote plugin's health, last error and circuit.
        var remote: RemotePlugin.Status?
        /// A library plugin's worker process: pid, state, restarts, crashes, quarantine.
        var worker: WorkerPlugin.Status?
        /// Only in the answer of the install that made it: the secret the remote needs, shown once.
        var installSecret: String?

        struct Runtime: Codable, Sendable {
            var kind: String
            /// A library's path, SHA-256 and isolation (`worker` or `in-process`).
            var path: String?
            var sha256: String?
            var isolation: String?
            /// A remote's URL and timeout.
            var url: String?
            var timeoutMs: Int?
        }

        init(_ status: PluginStatus) {
            let manifest = status.record.manifest
            id = manifest.id
            name = manifest.name
            version = manifest.version
            description = manifest.description
            sdk = manifest.sdk
            switch manifest.runtime.kind {
            case .library:
                runtime = Runtime(kind: manifest.runtime.kind.rawValue, path: manifest.runtime.resolvedPath, sha256: status.record.sha256, isolation: status.isolation?.rawValue)
            case .remote:
                runtime = Runtime(kind: manifest.runtime.kind.rawValue, url: manifest.runtime.url, timeoutMs: status.run.remote?.timeoutMs)
            }
            permissions = manifest.permissions
            subscriptions = manifest.subscriptions
            routes = manifest.routes
            config = manifest.config
            self.status = status.loaded ? "loaded" : "failed"
            loadError = status.loadError
            enabledIn = status.enabledIn
            installedAt = status.record.installedAt
            bundle = status.record.bundle
            remote = status.run.remote
            worker = status.run.worker
            installSecret = status.installSecret
        }
    }

    struct PluginList: Codable, Sendable { var plugins: [PluginView] }

    struct InstallSecret: Codable, Sendable {
        var pluginId: String
        var installSecret: String
    }

    struct NewTenant: Codable, Sendable {
        var id: String
        var name: String
    }

    struct TenantView: Codable, Sendable {
        var id: String
        var name: String
        var createdAt: Date
    }

    struct TenantList: Codable, Sendable { var tenants: [TenantView] }

    struct NewWorkspace: Codable, Sendable {
        var id: String
        var name: String
    }

    struct WorkspaceView: Codable, Sendable {
        var id: String
        var tenantId: String
        var name: String
        var createdAt: Date

        init(_ workspace: Workspace) {
            id = workspace.id
            tenantId = workspace.tenantID
            name = workspace.name
            createdAt = workspace.createdAt
        }
    }

    struct WorkspaceList: Codable, Sendable { var workspaces: [WorkspaceView] }

    struct NewToken: Codable, Sendable {
        var role: String
        var subject: String
        var workspaces: [String]?
    }

    /// A platform admin token to make: who it is for.
    struct NewPlatformToken: Codable, Sendable {
        var subject: String
    }

    struct TokenView: Codable, Sendable {
        /// The secret, shown only in this response.
        var token: String
        var id: String
        var role: String
        var subject: String
        /// `nil` (absent) for a platform admin token.
        var tenantId: String?
        var workspaces: [String]

        init(minted: APIToken.Minted, _ record: TokenRecord) {
            token = minted.token
            id = record.id
            role = record.role.rawValue
            subject = record.subject
            tenantId = record.tenantID
            workspaces = record.workspaces
        }
    }

    /// A token as listed: never its secret.
    struct TokenInfo: Codable, Sendable {
        var id: String
        var role: String
        var subject: String
        /// `nil` (absent) for a platform admin token.
        var tenantId: String?
        var workspaces: [String]
        var createdAt: Date

        init(_ record: TokenRecord) {
            id = record.id
            role = record.role.rawValue
            subject = record.subject
            tenantId = record.tenantID
            workspaces = record.workspaces
            createdAt = record.createdAt
        }
    }

    struct TokenList: Codable, Sendable { var tokens: [TokenInfo] }

    struct EnableRequest: Codable, Sendable {
        var grants: [String]?
        var config: [String: JSONValue]?
    }

    struct EnablementView: Codable, Sendable {
        var workspaceId: String
        var pluginId: String
        var grants: [String]
        var config: [String: JSONValue]
        var updatedAt: Date

        init(_ enablement: Enablement) {
            workspaceId = enablement.workspaceID
            pluginId = enablement.pluginID
            grants = enablement.grants
            config = enablement.config
            updatedAt = enablement.updatedAt
        }
    }

    struct EnablementList: Codable, Sendable { var plugins: [EnablementView] }

    struct Health: Codable, Sendable { var status: String }

    /// An event delivery given up after its attempts.
    struct DeadLetterView: Codable, Sendable {
        struct Event: Codable, Sendable {
            var id: String
            var type: String
            var sourcePluginId: String
            var occurredAt: Date
            /// The payload as JSON; `payloadBase64` instead when it is not JSON.
            var payload: JSONValue?
            var payloadBase64: String?
        }

        var id: String
        var pluginId: String
        var event: Event
        var attempts: Int
        var lastError: String
        /// `dead` (waiting), `replay` (asked for), `delivered` (replayed) or `discarded`.
        var state: String
        var deadAt: Date
        var updatedAt: Date

        init(_ letter: DeadLetter) {
            id = letter.id
            pluginId = letter.pluginID
            let payload = try? JSONDecoder().decode(JSONValue.self, from: letter.event.payload)
            event = Event(
                id: letter.event.id, type: letter.event.type, sourcePluginId: letter.event.sourcePluginID, occurredAt: letter.event.occurredAt,
                payload: payload, payloadBase64: payload == nil ? letter.event.payload.base64EncodedString() : nil)
            attempts = letter.attempts
            lastError = letter.lastError
            state = letter.state.rawValue
            deadAt = letter.deadAt
            updatedAt = letter.updatedAt
        }
    }

    struct DeadLetterList: Codable, Sendable {
        var deadLetters: [DeadLetterView]
    }

    struct Replayed: Codable, Sendable {
        /// The dead letters now waiting for their subscriber's lane to deliver them again.
        var replaying: [String]
    }
}
