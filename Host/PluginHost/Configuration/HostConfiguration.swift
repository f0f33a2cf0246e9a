import Foundation

/// Settings of a host process. Flags and environment are parsed into it in one place (the CLI).
public struct HostConfiguration: Sendable {
    /// Retries of failed event deliveries.
    public struct RetryPolicy: Sendable {
        public var maxAttempts: Int
        /// The wait after the first failure; each further one doubles it, up to `maxDelay`.
        public var initialDelay: Duration
        public var maxDelay: Duration

        public init(maxAttempts: Int = 4, initialDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(30)) {
            self.maxAttempts = max(1, maxAttempts)
            self.initialDelay = initialDelay
            self.maxDelay = maxDelay
        }
    }

    /// How events are kept and delivered (docs/events.md).
    public struct EventSettings: Sendable {
        /// How long a host holds a subscriber's lane after its last move; another host takes over a lane
        /// whose host died once this has passed. Longer than any one delivery may take.
        public var lease: Duration = .seconds(30)
        /// How often an idle lane looks for events when no wake-up came (a missed notification).
        public var pollInterval: Duration = .seconds(1)
        /// Events a lane reads at a time.
        public var batchSize = 256
        /// How long delivered events, and replayed or discarded dead letters, are kept.
        public var retention: Duration = .seconds(7 * 86_400)
        /// How often what is past `retention` is deleted.
        public var pruneInterval: Duration = .seconds(600)

        public init() {}
    }

    /// Folder of the embedded store.
    public var dataDirectory: String
    /// Keep all state in PostgreSQL instead of the embedded store.
    public var postgres: PostgresConfiguration?
    public var hostname: String
    /// 0 picks a free port.
    public var port: Int
    /// Manifests installed at start when not installed yet.
    public var manifestsDirectory: String?
    /// The platform admin token; when `nil` and none is stored yet, one is generated and printed once.
    public var adminToken: String?
    /// Largest request body accepted, in bytes.
    public var maxBodySize: Int
    /// Largest answer body a plugin may give, in bytes, whatever its runtime; a larger one is refused
    /// with 502 `RESPONSE_TOO_LARGE`.
    public var maxResponseSize: Int = 8 << 20
    /// How long the answer to a request with an `Idempotency-Key` is kept, to answer its repeats.
    public var idempotencyRetention: Duration = .seconds(86_400)
    /// Largest plugin bundle accepted through the API, in bytes.
    public var maxBundleSize: Int = 128 << 20
    /// When set, only bundles signed by one of these keys are installed (and loaded).
    public var trustedKeys: TrustedKeys?
    /// How long a plugin may take to answer a request or run a hook.
    public var pluginTimeout: Duration
    /// How long a client may take to send a request's head (counted from the connection's start or the
    /// previous answer, so it also closes idle connections) and, separately, its body.
    public var readTimeout: Duration
    /// Largest storage key, in UTF-8 bytes.
    public var maxKeyBytes: Int
    /// Largest stored value, in bytes.
    public var maxValueBytes: Int
    /// Attempts at an event delivery to a library plugin before it becomes a dead letter (remote plugins:
    /// ``RemoteConfiguration/eventRetry``).
    public var eventRetry: RetryPolicy
    public var events = EventSettings()
    /// Remote plugins: host key, callback URL, circuit breaker, health checks.
    public var remote: RemoteConfiguration
    /// Library plugins in worker processes: the default isolation, restarts, quarantine.
    public var workers = WorkerConfiguration()

    public init(
        dataDirectory: String,
        hostname: String = "127.0.0.1",
        port: Int = 8080,
        manifestsDirectory: String? = nil,
        adminToken: String? = nil,
        maxBodySize: Int = 1 << 20,
        pluginTimeout: Duration = .seconds(10),
        readTimeout: Duration = .seconds(30),
        maxKeyBytes: Int = 1024,
        maxValueBytes: Int = 1 << 20,
        eventRetry: RetryPolicy = RetryPolicy(maxAttempts: 8, initialDelay: .seconds(1), maxDelay: .seconds(300)),
        postgres: PostgresConfiguration? = nil,
        remote: RemoteConfiguration = RemoteConfiguration()
    ) {
        self.remote = remote
        self.dataDirectory = dataDirectory
        self.postgres = postgres
        self.hostname = hostname
        self.port = port
        self.manifestsDirectory = manifestsDirectory
        self.adminToken = adminToken
        self.maxBodySize = maxBodySize
        self.pluginTimeout = pluginTimeout
        self.readTimeout = readTimeout
        self.maxKeyBytes = maxKeyBytes
        self.maxValueBytes = maxValueBytes
        self.eventRetry = eventRetry
    }
}

/// How library plugins run in worker processes (docs/workers.md).
public struct WorkerConfiguration: Sendable {
    /// Where a library plugin runs when its manifest does not say.
    public var defaultIsolation: PluginManifest.Runtime.Isolation = .worker
    /// The `plugin-host-worker` executable; by default the one beside this process's executable.
    public var executable: String = WorkerConfiguration.besideThisExecutable
    /// The wait before restarting a worker that ended; each further crash doubles it, up to `maxDelay`.
    public var restart = HostConfiguration.RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(100), maxDelay: .seconds(30))
    /// A plugin whose worker crashes this many times within `quarantineWindow` is quarantined.
    public var quarantineCrashes = 5
    public var quarantineWindow: Duration = .seconds(600)
    /// How long a worker may take from spawn to having loaded its plugin.
    public var startTimeout: Duration = .seconds(10)
    /// How long a worker may take to answer a health ping.
    public var pingTimeout: Duration = .seconds(5)
    /// The most address space a worker may have (`RLIMIT_AS`), and what one gets when its manifest sets no
    /// `limits.memory`. An idle worker takes about 150 MiB of address space, 20 MiB of it resident.
    public var maxMemoryBytes: UInt64 = 2 << 30
    /// The most open files a worker may have (`RLIMIT_NOFILE`), and its default.
    public var maxOpenFiles = 1024
    /// How long the plugin's `shutdown` may take when the host stops.
    public var shutdownGrace: Duration = .seconds(5)
    /// Added to the environment a worker inherits from the host: `SWIFT_BACKTRACE=enable=no`, say, for
    /// crashes that end at once rather than after their symbolicated backtrace (about a second of CPU).
    public var environment: [String: String] = [:]

    public init() {}

    /// `plugin-host-worker` in the folder of the running executable.
    public static var besideThisExecutable: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("plugin-host-worker").path
    }
}
