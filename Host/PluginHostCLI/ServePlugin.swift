import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PluginHost

struct ServePlugin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-plugin",
        abstract: "Run a library plugin as a remote plugin (docs/remote-protocol.md).",
        discussion: """
            Install a manifest with `runtime: {kind: remote, url: http://HOST:PORT}` on the host; it answers the install \
            secret once. Give it to this process with --install-secret-file (read at every enabled call, so it may be \
            written after the start) or PLUGIN_HOST_INSTALL_SECRET.
            """
    )

    @Option(help: "The plugin library (.so) to serve; it is checked like the host checks it before loading.")
    var library: String

    @Option(help: "Address to listen on.")
    var hostname: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one; the bound port is printed).")
    var port: Int = 9001

    @Option(help: "File holding the install secret (or PLUGIN_HOST_INSTALL_SECRET).")
    var installSecretFile: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = try logging.bootstrap(label: "plugin-host-remote")
        let source: RemotePluginServer.InstallSecretSource = if let installSecretFile {
            .file(installSecretFile)
        } else if let secret = ProcessInfo.processInfo.environment["PLUGIN_HOST_INSTALL_SECRET"], !secret.isEmpty {
            .value(secret)
        } else {
            .none
        }
        let hostname = self.hostname
        let app = try RemotePluginServer.build(
            libraryPath: library, hostname: hostname, port: port, installSecret: source, logger: logger,
            onServerRunning: { port in
                print("listening on \(hostname):\(port)")
                fflush(nil)
            }
        )
        try await app.runService()
    }
}
