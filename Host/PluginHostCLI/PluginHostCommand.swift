import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

@main
enum Entry {
    static func main() async {
        // Opt-in: Swift concurrency's jobs run on the NIO event loops instead of a pool of their own
        // (NIO's documented take-over, which Vapor offers too). A request's hops between the server, the
        // plugin call and the HTTP client to a remote then stay on one thread: a remote call's added
        // latency falls by about a third. But every await of a call that does not suspend costs more
        // (the in-process dispatch path about 7 times as much), and a plugin that blocks would block
        // an event loop. `make bench` measures both; see the README's Performance section.
        if ProcessInfo.processInfo.environment["PLUGIN_HOST_NIO_EXECUTOR"] == "1" {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await PluginHostCommand.main()
    }
}

struct PluginHostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin-host",
        abstract: "A plugin host: loads Swift plugin libraries and serves them per workspace over HTTP.",
        subcommands: [
            Serve.self, ServePlugin.self, Validate.self, New.self,
            PluginsCommand.self, TenantsCommand.self, WorkspacesCommand.self, TokensCommand.self, Enable.self, Disable.self,
        ]
    )
}
