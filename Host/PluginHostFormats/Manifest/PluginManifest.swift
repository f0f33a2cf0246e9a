import PluginSDK

/// A validated plugin manifest. Made only by ``ManifestValidator``, so every value in it has been checked.
public struct PluginManifest: Sendable, Hashable, Codable {
    public struct Runtime: Sendable, Hashable, Codable {
        public enum Kind: String, Sendable, Hashable, Codable {
            /// A shared library loaded into the host process.
            case library
            /// An HTTP service the host calls (docs/remote-protocol.md).
            case remote
        }
        /// Where a library plugin's code runs.
        public enum Isolation: String, Sendable, Hashable, Codable, CaseIterable {
            /// A supervised `plugin-host-worker` process of its own (docs/workers.md).
            case worker
            /// Loaded into the host process: the fastest calls, and no protection from its faults.
            case inProcess = "in-process"
        }
        public var kind: Kind
        /// A library plugin's isolation as its manifest (or the platform admin at install) chose it;
        /// `nil`: the host's default.
        public var isolation: Isolation?
        /// The library path as written in the manifest; empty for a remote plugin.
        public var path: String
        /// `path` resolved against the manifest's folder; empty for a remote plugin.
        public var resolvedPath: String
        public var sha256: String?
        /// A remote plugin's base URL.
        public var url: String?
        /// A remote plugin's per-call timeout in milliseconds; `nil`: the host's plugin timeout.
        public var timeoutMilliseconds: Int?

        /// The per-call timeout of a remote plugin, within the range the validator allows (a manifest
        /// read back from the store is not validated again).
        public var timeout: Duration? { timeoutMilliseconds.map { .milliseconds(min(max($0, 1), 600_000)) } }
    }

    public struct Route: Sendable, Hashable, Codable {
        /// An HTTP method in upper case, or `*` for any.
        public var method: String
        /// Segments below `resources/`; `{name}` matches one segment, a final `*` matches the rest.
        public var path: String
        public var minimumRole: CallerRole
    }

    /// What a library plugin's worker process may use (`limits:`); the host caps each with its own maximum.
    public struct Limits: Sendable, Hashable, Codable {
        /// The worker's address space in bytes.
        public var memoryBytes: UInt64?
        /// Open file descriptors.
        public var openFiles: Int?

        public init(memoryBytes: UInt64? = nil, openFiles: Int? = nil) {
            self.memoryBytes = memoryBytes
            self.openFiles = openFiles
        }
    }

    /// How its event deliveries are retried (`delivery:`), within the host's limits.
    public struct Delivery: Sendable, Hashable, Codable {
        /// Attempts at one delivery before it becomes a dead letter; the host's own setting caps it.
        public var maxAttempts: Int?
        /// The most events one call of `handle(events:)` receives (1 when absent). A remote plugin's calls
        /// carry one event each, whatever it says: the same manifest serves every runtime.
        public var batchSize: Int?

        public init(maxAttempts: Int? = nil, batchSize: Int? = nil) {
            self.maxAttempts = maxAttempts
            self.batchSize = batchSize
        }

        /// The longest run of events a delivery hands over at once.
        public static let maximumBatchSize = 256
    }

    public var id: String
    public var name: String
    public var version: String
    public var sdk: String
    public var description: String
    public var runtime: Runtime
    public var permissions: [String]
    public var subscriptions: [String]
    public var routes: [Route]
    public var config: ConfigSchema
    /// Limits of its worker process; `nil` when the manifest has none (the host's apply).
    public var limits: Limits?
    /// Its own retry setting for event deliveries; `nil`: the host's.
    public var delivery: Delivery?

    /// The requested permissions, parsed.
    public var requestedPermissions: PermissionSet { PermissionSet(permissions.compactMap(Permission.init)) }

    /// Whether the plugin subscribes to events of `type`.
    public func subscribes(to type: String) -> Bool {
        subscriptions.contains { EventPattern($0)?.matches(type) ?? false }
    }
}
