import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PluginHost

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the host.")

    @Option(help: "Folder of the embedded store.")
    var data: String = "./data"

    @Option(help: "Address to listen on.")
    var hostname: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port: Int = 8080

    @Option(help: "Folder of manifests to install at start (those not installed yet).")
    var manifests: String?

    @Option(help: "Platform admin token (or PLUGIN_HOST_ADMIN_TOKEN). Without either, one is generated on first start and printed once.")
    var adminToken: String?

    @Option(help: "Largest request body in bytes.")
    var maxBodySize: Int = 1 << 20

    @Option(help: "Largest answer body a plugin may give, in bytes (in-process, worker or remote); a larger one is answered 502 RESPONSE_TOO_LARGE.")
    var maxResponseSize: Int = 8 << 20

    @Option(help: "Largest plugin bundle accepted by POST /v1/plugins, in bytes.")
    var maxBundleSize: Int = 128 << 20

    @Option(help: ArgumentHelp(
        "Install and load only plugin bundles signed by a key in this folder (*.pub files, as plugin-host keys generate writes them).",
        discussion: "Manifests naming a file on the host's disk are refused then.", valueName: "dir"))
    var trustedKeys: String?

    @Option(help: "Seconds a plugin may take per request or hook.")
    var pluginTimeout: Double = 10

    @Option(help: ArgumentHelp(
        "Seconds a client may take to send a request's head (counted from the connection's start or the previous answer; idle connections close after it) and, separately, its body.",
        valueName: "seconds"))
    var readTimeout: Double = 30

    @OptionGroup var logging: LoggingOptions

    @Option(help: ArgumentHelp(
        "Keep all state in PostgreSQL at this URL (or PLUGIN_HOST_DATABASE_URL) instead of the embedded store under --data.",
        discussion: "Connect as a role without SUPERUSER or BYPASSRLS; row-level security isolates workspaces.", valueName: "url"))
    var postgres: String?

    @Option(help: ArgumentHelp(
        "Run migrations as the role of this URL, the tables' owner (or PLUGIN_HOST_DATABASE_MIGRATION_URL); default: the --postgres role.",
        valueName: "url"))
    var postgresMigrationUrl: String?

    @Option(help: "PostgreSQL connections (and libpq threads) at most.")
    var postgresPoolSize: Int = 8

    @Option(help: ArgumentHelp(
        "The base URL remote plugins use to call the host's SDK (/sdk/v1); default: http://{hostname}:{port}.", valueName: "url"))
    var publicUrl: String?

    @Option(help: ArgumentHelp(
        "Seconds between health checks of each remote plugin.", valueName: "seconds"))
    var remoteHealthInterval: Double = 10

    @Option(help: ArgumentHelp(
        "Where library plugins run when their manifest does not say (runtime.isolation): worker (a supervised process each) or in-process.",
        valueName: "isolation"))
    var isolation: PluginManifest.Runtime.Isolation = .worker

    @Option(help: ArgumentHelp(
        "Worker crashes within --quarantine-window that quarantine a plugin.", valueName: "count"))
    var quarantineCrashes: Int = 5

    @Option(help: ArgumentHelp("Seconds over which worker crashes are counted.", valueName: "seconds"))
    var quarantineWindow: Double = 600

    @Option(help: ArgumentHelp(
        "The most address space a worker may have (256MiB, 2GiB), and what one gets without limits.memory in its manifest.", valueName: "size"))
    var workerMaxMemory: String = "2GiB"

    @Option(help: ArgumentHelp("The most open files a worker may have, and its default.", valueName: "count"))
    var workerMaxOpenFiles: Int = 1024

    @Option(help: ArgumentHelp("Attempts at an event delivery before it becomes a dead letter.", valueName: "count"))
    var eventAttempts: Int = 8

    @Option(help: ArgumentHelp(
        "Seconds a host holds a subscriber's lane of events without renewing it; a lane whose host died is taken over after this. "
            + "More than --plugin-timeout; default: 30, or 3 x --plugin-timeout if that is more.", valueName: "seconds"))
    var eventLease: Double?

    @Option(help: ArgumentHelp("Days delivered events and replayed or discarded dead letters are kept.", valueName: "days"))
    var eventRetention: Double = 7

    func validate() throws {
        try Self.check("--port", Double(port), within: 0...65535)
        try Self.check("--max-body-size", Double(maxBodySize), within: 1...Double(1 << 30))
        try Self.check("--max-response-size", Double(maxResponseSize), within: 1...Double(1 << 30))
        try Self.check("--max-bundle-size", Double(maxBundleSize), within: 1024...Double(PluginBundle.maximumBytes))
        if let trustedKeys {
            do {
                _ = try TrustedKeys.load(directory: trustedKeys)
            } catch {
                throw ValidationError("--trusted-keys: \(error)")
            }
        }
        try Self.check("--plugin-timeout", pluginTimeout, within: 0.001...86_400)
        try Self.check("--read-timeout", readTimeout, within: 0.1...3_600)
        try Self.check("--postgres-pool-size", Double(postgresPoolSize), within: 1...256)
        try Self.check("--remote-health-interval", remoteHealthInterval, within: 0.1...86_400)
        try Self.check("--quarantine-crashes", Double(quarantineCrashes), within: 1...1_000_000)
        try Self.check("--quarantine-window", quarantineWindow, within: 1...31_536_000)
        try Self.check("--worker-max-open-files", Double(workerMaxOpenFiles), within: 16...1_048_576)
        try Self.check("--event-attempts", Double(eventAttempts), within: 1...1_000)
        if let eventLease {
            // Longer than one delivery may take, or a slow one is taken over while it runs.
            try Self.check("--event-lease", eventLease, within: max(1, pluginTimeout + 1)...max(86_400, pluginTimeout + 1))
        }
        try Self.check("--event-retention", eventRetention, within: 0.001...3_650)
        guard let memory = ManifestValidator.bytes(workerMaxMemory), memory >= ManifestValidator.minimumMemory, memory <= 1 << 40 else {
            throw ValidationError("--worker-max-memory must be a size from 64MiB to 1TiB (for example 512MiB or 2GiB), not \(workerMaxMemory)")
        }
    }

    private static func check(_ flag: String, _ value: Double, within range: ClosedRange<Double>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be from \(range.lowerBound.formatted) to \(range.upperBound.formatted), not \(value.formatted)")
        }
    }

    func run() async throws {
        let logger = try logging.bootstrap(label: "plugin-host")
        let environment = ProcessInfo.processInfo.environment
        var configuration = HostConfiguration(
            dataDirectory: data, hostname: hostname, port: port, manifestsDirectory: manifests,
            adminToken: adminToken ?? environment["PLUGIN_HOST_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
            maxBodySize: maxBodySize, pluginTimeout: .milliseconds(Int64(pluginTimeout * 1000)), readTimeout: .milliseconds(Int64(readTimeout * 1000)),
            postgres: (postgres ?? environment["PLUGIN_HOST_DATABASE_URL"]).flatMap { $0.isEmpty ? nil : $0 }.map { url in
                PostgresConfiguration(
                    url: url, migrationURL: (postgresMigrationUrl ?? environment["PLUGIN_HOST_DATABASE_MIGRATION_URL"]).flatMap { $0.isEmpty ? nil : $0 },
                    poolSize: postgresPoolSize
                )
            }
        )
        configuration.remote = RemoteConfiguration(
            // The key is taken from the environment only: a flag would show it in the process list.
            secretKey: environment["PLUGIN_HOST_SECRET_KEY"].flatMap { $0.isEmpty ? nil : $0 },
            publicURL: publicUrl, healthInterval: .milliseconds(Int64(remoteHealthInterval * 1000))
        )
        configuration.maxResponseSize = maxResponseSize
        configuration.maxBundleSize = maxBundleSize
        configuration.trustedKeys = try trustedKeys.map { try TrustedKeys.load(directory: $0) }
        configuration.workers.defaultIsolation = isolation
        configuration.workers.quarantineCrashes = quarantineCrashes
        configuration.workers.quarantineWindow = .milliseconds(Int64(quarantineWindow * 1000))
        configuration.workers.maxMemoryBytes = ManifestValidator.bytes(workerMaxMemory) ?? configuration.workers.maxMemoryBytes  // checked in validate()
        configuration.workers.maxOpenFiles = workerMaxOpenFiles
        configuration.eventRetry.maxAttempts = eventAttempts
        configuration.events.lease = .milliseconds(Int64((eventLease ?? max(30, 3 * pluginTimeout)) * 1000))
        configuration.events.retention = .seconds(eventRetention * 86_400)
        let hostname = configuration.hostname
        let app = try await buildApplication(
            configuration: configuration, logger: logger,
            announceAdminToken: { token in
                print("""
                ────────────────────────────────────────────────────────────────────
                Platform admin token (shown once, stored hashed; keep it safe):

                    \(token)

                export PLUGIN_HOST_TOKEN=\(token)
                ────────────────────────────────────────────────────────────────────
                """)
                fflush(nil)
            },
            onServerRunning: { port in
                print("plugin-host listening on http://\(hostname):\(port)")
                fflush(nil)
            }
        )
        try await app.runService()
    }
}

private extension Double {
    /// `10` rather than `10.0`.
    var formatted: String { rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}

extension PluginManifest.Runtime.Isolation: ExpressibleByArgument {}
