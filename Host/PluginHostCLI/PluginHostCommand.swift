import ArgumentParser
import NIOCore
import NIOPosix

@main
enum Entry {
    static func main() async {
        // Swift concurrency's jobs run on the NIO event loops instead of a pool of their own, so a
        // request's hops between the server, the plugin call and the HTTP client to a remote stay on
        // one thread instead of waking another for each (NIO's documented take-over; Vapor offers the
        // same). Nothing in the host blocks a concurrency thread: SQLite and libpq run on threads of
        // their own.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
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
