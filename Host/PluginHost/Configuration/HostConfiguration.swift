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
    /// How long a plugin may take to answer a request or run a hook.
    public var pluginTimeout: Duration
    /// How long a client may take to send a request's head (counted from the connection's start or the
    /// previous answer, so it also closes idle connections) and, separately, its body.
    public var readTimeout: Duration
    /// Largest storage key, in UTF-8 bytes.
    public var maxKeyBytes: Int
    /// Largest stored value, in bytes.
    public var maxValueBytes: Int
    public var eventRetry: RetryPolicy
    /// Remote plugins: host key, callback URL, circuit breaker, health checks.
    public var remote: RemoteConfiguration

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
        eventRetry: RetryPolicy = RetryPolicy(),
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
