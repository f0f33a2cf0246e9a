import ArgumentParser
import Foundation
import PluginHost

@main
enum Entry {
    static func main() async {
        NIOExecutor.installIfRequested()
        await PluginHostCommand.main()
    }
}

struct PluginHostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin-host",
        abstract: "A plugin host: loads Swift plugin libraries and serves them per workspace over HTTP.",
        subcommands: [
            Serve.self, ServePlugin.self, Validate.self, New.self, Pack.self, KeysCommand.self,
            PluginsCommand.self, TenantsCommand.self, WorkspacesCommand.self, TokensCommand.self, Enable.self, Disable.self, DeadLettersCommand.self,
        ]
    )
}
