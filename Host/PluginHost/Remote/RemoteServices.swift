import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// Settings of remote plugins: the host key, the URL remotes call back, and how the host treats a
/// remote that fails (docs/remote-protocol.md, "How the host treats a remote").
public struct RemoteConfiguration: Sendable {
    /// The master key (base64 of 32 bytes) sealing remote secrets and signing SDK tokens; `nil`: the
    /// file `secret.key` in the data folder, made on first start. Hosts sharing a database must share it.
    public var secretKey: String?
    /// The base URL remotes use for the SDK (`/sdk/v1/...`); `nil`: `http://{hostname}:{bound port}`.
    public var publicURL: String?
    /// Failures in a row that open a remote's circuit.
    public var failureThreshold: Int
    /// How long an open circuit refuses calls before it lets a probe through.
    public var cooldown: Duration
    /// How often each remote's `GET /health` is called.
    public var healthInterval: Duration
    /// How long an SDK token outlives its call's timeout.
    public var tokenGrace: Duration
    /// Retries of event deliveries to remotes (longer than in-process ones: a remote may be restarting).
    public var eventRetry: HostConfiguration.RetryPolicy
    /// Pooled HTTP/1.1 connections to one remote, at most.
    public var connectionsPerRemote: Int
    /// How long connecting to a remote may take. The client retries a refused connection until then,
    /// so this is also how long a call to a remote that is down takes before 502.
    public var connectTimeout: Duration

    public init(
        secretKey: String? = nil, publicURL: String? = nil, failureThreshold: Int = 5, cooldown: Duration = .seconds(5),
        healthInterval: Duration = .seconds(10), tokenGrace: Duration = .seconds(30),
        eventRetry: HostConfiguration.RetryPolicy = .init(maxAttempts: 12, initialDelay: .milliseconds(100), maxDelay: .seconds(30)),
        connectionsPerRemote: Int = 64, connectTimeout: Duration = .seconds(1)
    ) {
        self.connectTimeout = connectTimeout
        self.secretKey = secretKey
        self.publicURL = publicURL
        self.failureThreshold = failureThreshold
        self.cooldown = cooldown
        self.healthInterval = healthInterval
        self.tokenGrace = tokenGrace
        self.eventRetry = eventRetry
        self.connectionsPerRemote = connectionsPerRemote
    }
}

extension HTTPClient {
    /// The client of either side of the remote protocol: pooled HTTP/1.1 connections, no redirects, no
    /// decompression, and no tracer (a span's attributes cost a second URL parse per request).
    static func forRemotePlugins(connectTimeout: Duration, connections: Int) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .milliseconds(connectTimeout.milliseconds))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        configuration.decompression = .disabled
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }
}

/// What every remote plugin of a host shares: the pooled HTTP client, the host key, the store that
/// keeps the sealed secrets, and the URL remotes call back.
final class RemoteServices: Sendable {
    let configuration: RemoteConfiguration
    let secrets: HostSecrets
    let store: any HostStore
    let logger: Logger
    /// Largest answer body taken from a remote.
    let maxBodySize: Int
    /// Largest answer body read from a remote plugin.
    let maxResponseSize: Int
    /// A remote's timeout when its manifest names none.
    let defaultTimeout: Duration
    private let hostname: String
    private let client = Mutex<HTTPClient?>(nil)
    private let boundPort = Atomic<Int>(0)

    init(configuration: RemoteConfiguration, secrets: HostSecrets, store: any HostStore, host: HostConfiguration, logger: Logger) {
        self.configuration = configuration
        self.secrets = secrets
        self.store = store
        self.logger = logger
        self.maxBodySize = host.maxBodySize
        self.maxResponseSize = host.maxResponseSize
        self.defaultTimeout = host.pluginTimeout
        self.hostname = host.hostname
        boundPort.store(host.port, ordering: .relaxed)
    }

    /// Made on first use, so a host without remote plugins holds no client.
    var httpClient: HTTPClient {
        client.withLock { client in
            if let client { return client }
            let made = HTTPClient.forRemotePlugins(connectTimeout: self.configuration.connectTimeout, connections: self.configuration.connectionsPerRemote)
            client = made
            return made
        }
    }

    func shutdown() async {
        guard let client = client.withLock({ client in defer { client = nil }; return client }) else { return }
        try? await client.shutdown()
    }

    /// Called once the server listens, so `sdk.url` names the real port when the configured one was 0.
    func serverRunning(port: Int) {
        boundPort.store(port, ordering: .relaxed)
    }

    var sdkBaseURL: String {
        if let url = configuration.publicURL { return url.hasSuffix("/") ? String(url.dropLast()) : url }
        let host = hostname == "0.0.0.0" || hostname == "::" ? "127.0.0.1" : hostname
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(boundPort.load(ordering: .relaxed))"
    }

    // MARK: Sealed secrets in the store

    static func installSecretKey(plugin: String) -> String { "remote.install-secret:\(plugin)" }
    static func enablementSecretKey(plugin: String, workspace: String) -> String { "remote.enablement-secret:\(plugin):\(workspace)" }

    func secret(_ key: String) async throws -> String? {
        guard let sealed = try await store.setting(key), !sealed.isEmpty else { return nil }
        return try secrets.open(sealed, purpose: key)
    }

    func setSecret(_ key: String, _ secret: String?) async throws {
        try await store.setSetting(key, try secret.map { try secrets.seal($0, purpose: key) } ?? "")
    }
}
