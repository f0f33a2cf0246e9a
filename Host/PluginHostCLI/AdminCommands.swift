import ArgumentParser
import Foundation
import PluginHost

struct PluginsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins", abstract: "List, show, install and uninstall plugins (platform admin).",
        subcommands: [List.self, Get.self, Install.self, Uninstall.self, LiftQuarantine.self], defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let data = try await connection.client().send(.GET, "/v1/plugins")
            if connection.json { return printJSON(data) }
            let plugins = decodeObject(data)["plugins"] as? [[String: Any]] ?? []
            printTable(["ID", "VERSION", "STATUS", "RUNS", "ENABLED IN", "NAME"], plugins.map { plugin in
                let runtime = plugin["runtime"] as? [String: Any]
                let worker = plugin["worker"] as? [String: Any]
                // A worker's state beside its isolation: "worker (running)", "worker (quarantined)".
                let runs = worker.map { "worker (\(text($0["state"])))" } ?? text(runtime?["isolation"] ?? runtime?["kind"])
                return [text(plugin["id"]), text(plugin["version"]), text(plugin["status"]), runs, text((plugin["enabledIn"] as? [Any])?.count), text(plugin["name"])]
            })
        }
    }

    struct Get: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String

        func run() async throws {
            printJSON(try await connection.client().send(.GET, "/v1/plugins/\(id)"))
        }
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install a plugin from a bundle (uploaded to the host, from any machine) or a manifest file on the host's machine.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "A bundle (plugin-host pack), or a manifest file (YAML or JSON) whose library is on the host's machine.") var manifest: String
        @Option(help: "Where a library plugin runs, over its manifest's choice: worker or in-process.") var isolation: String?

        func run() async throws {
            let url = URL(fileURLWithPath: manifest)
            let body = try Data(contentsOf: url)
            let choice = isolation.map { "isolation=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" }
            let data: Data
            if PluginBundle.looksLikeBundle(body) {
                data = try await connection.client().send(.POST, "/v1/plugins" + (choice.map { "?" + $0 } ?? ""), body: body, contentType: "application/vnd.plugin-host.bundle")
            } else {
                let base = url.deletingLastPathComponent().standardizedFileURL.path
                let query = base.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+"))) ?? base
                let type = manifest.hasSuffix(".json") ? "application/json" : "application/yaml"
                data = try await connection.client().send(.POST, "/v1/plugins?base=\(query)" + (choice.map { "&" + $0 } ?? ""), body: body, contentType: type)
            }
            if connection.json { return printJSON(data) }
            let plugin = decodeObject(data)
            print("installed \(text(plugin["id"])) \(text(plugin["version"])) (\(text(plugin["status"])))")
        }
    }

    struct LiftQuarantine: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lift-quarantine", abstract: "Let a plugin whose worker crashed too often run again.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String

        func run() async throws {
            _ = try await connection.client().send(.DELETE, "/v1/plugins/\(id)/quarantine")
            print("\(id) is not quarantined")
        }
    }

    struct Uninstall: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String

        func run() async throws {
            _ = try await connection.client().send(.DELETE, "/v1/plugins/\(id)")
            print("uninstalled \(id)")
        }
    }
}

struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "List and create tenants.", subcommands: [List.self, Create.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let data = try await connection.client().send(.GET, "/v1/tenants")
            if connection.json { return printJSON(data) }
            printTable(["ID", "NAME", "CREATED"], (decodeObject(data)["tenants"] as? [[String: Any]] ?? []).map {
                [text($0["id"]), text($0["name"]), text($0["createdAt"])]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        @Option var name: String?

        func run() async throws {
            let data = try await connection.client().send(.POST, "/v1/tenants", json: ["id": id, "name": name ?? id])
            connection.json ? printJSON(data) : print("created tenant \(id)")
        }
    }
}

struct WorkspacesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workspaces", abstract: "List and create workspaces of a tenant, and list a workspace's plugins.",
        subcommands: [List.self, Create.self, Plugins.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant id.") var tenant: String

        func run() async throws {
            let data = try await connection.client().send(.GET, "/v1/tenants/\(tenant)/workspaces")
            if connection.json { return printJSON(data) }
            printTable(["ID", "TENANT", "NAME"], (decodeObject(data)["workspaces"] as? [[String: Any]] ?? []).map {
                [text($0["id"]), text($0["tenantId"]), text($0["name"])]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant id.") var tenant: String
        @Argument var id: String
        @Option var name: String?

        func run() async throws {
            let data = try await connection.client().send(.POST, "/v1/tenants/\(tenant)/workspaces", json: ["id": id, "name": name ?? id])
            connection.json ? printJSON(data) : print("created workspace \(id) in tenant \(tenant)")
        }
    }

    struct Plugins: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The plugins enabled in a workspace.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var workspace: String

        func run() async throws {
            let data = try await connection.client().send(.GET, "/v1/workspaces/\(workspace)/plugins")
            if connection.json { return printJSON(data) }
            printTable(["PLUGIN", "GRANTS", "UPDATED"], (decodeObject(data)["plugins"] as? [[String: Any]] ?? []).map {
                [text($0["pluginId"]), text($0["grants"]), text($0["updatedAt"])]
            })
        }
    }
}

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Create, list and revoke API tokens of a tenant, or without --tenant, platform admin tokens.",
        subcommands: [Create.self, List.self, Revoke.self],
        defaultSubcommand: Create.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A tenant's tokens, or the platform admin tokens (never their secrets).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant id; without it, the platform admin tokens.") var tenant: String?

        func run() async throws {
            let data = try await connection.client().send(.GET, tenant.map { "/v1/tenants/\($0)/tokens" } ?? "/v1/tokens")
            if connection.json { return printJSON(data) }
            printTable(["ID", "ROLE", "SUBJECT", "WORKSPACES", "CREATED"], (decodeObject(data)["tokens"] as? [[String: Any]] ?? []).map {
                [text($0["id"]), text($0["role"]), text($0["subject"]), text($0["workspaces"]), text($0["createdAt"])]
            })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a tenant's token, or a platform admin token, by its id (see `tokens list`).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant id; without it, a platform admin token.") var tenant: String?
        @Argument var id: String

        func run() async throws {
            _ = try await connection.client().send(.DELETE, tenant.map { "/v1/tenants/\($0)/tokens/\(id)" } ?? "/v1/tokens/\(id)")
            print(tenant.map { "revoked token \(id) of tenant \($0)" } ?? "revoked platform admin token \(id)")
        }
    }

    struct Create: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Tenant id (not for platform-admin).") var tenant: String?
        @Option(help: "tenant-admin or member with --tenant; platform-admin without.") var role: String
        @Option(help: "Who the token is for.") var subject: String
        @Option(name: .customLong("workspace"), help: "A workspace a member may use (repeat for several).") var workspaces: [String] = []

        func validate() throws {
            if (role == "platform-admin") != (tenant == nil) {
                throw ValidationError(tenant == nil
                    ? "--role \(role) needs --tenant: give the tenant the token belongs to"
                    : "a platform-admin token belongs to no tenant: leave out --tenant")
            }
        }

        func run() async throws {
            struct Body: Encodable { var role: String; var subject: String; var workspaces: [String]? }
            struct PlatformBody: Encodable { var subject: String }
            let client = try connection.client()
            let data = if let tenant {
                try await client.send(.POST, "/v1/tenants/\(tenant)/tokens", json: Body(role: role, subject: subject, workspaces: workspaces.isEmpty ? nil : workspaces))
            } else {
                try await client.send(.POST, "/v1/tokens", json: PlatformBody(subject: subject))
            }
            if connection.json { return printJSON(data) }
            print("token for \(subject) (\(role)); shown once, store it now:\n\(text(decodeObject(data)["token"]))")
        }
    }
}

struct Enable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enable a plugin in a workspace with grants and config (tenant admin).")
    @OptionGroup var connection: ConnectionOptions
    @Argument var workspace: String
    @Argument var plugin: String
    @Option(name: .customLong("grant"), help: "A permission to grant (repeat for several); without any, the workspace's grants stay as they are (none for a new enablement).")
    var grants: [String] = []
    @Flag(name: .customLong("no-grants"), help: "Take every grant away.") var noGrants = false
    @Option(help: "Config as a JSON object; without it, the config stays as it is.") var config: String?

    func run() async throws {
        let data = try await connection.client().send(.PUT, "/v1/workspaces/\(workspace)/plugins/\(plugin)", body: try body(), contentType: "application/json")
        if connection.json { return printJSON(data) }
        let granted = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["grants"] as? [String] ?? grants
        print("enabled \(plugin) in \(workspace) with grants: \(granted.isEmpty ? "none" : granted.joined(separator: ", "))")
    }

    /// Only what was asked for: grants and config left out are kept by the host.
    func body() throws -> Data {
        var body: [String: Any] = [:]
        if noGrants && !grants.isEmpty { throw ValidationError("--no-grants takes every grant away; it cannot go with --grant") }
        if noGrants || !grants.isEmpty { body["grants"] = grants }
        if let config {
            guard let object = try? JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any] else {
                throw ValidationError("--config must be a JSON object, for example '{\"maxLength\": 500}'")
            }
            body["config"] = object
        }
        return try JSONSerialization.data(withJSONObject: body)
    }
}

struct Disable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Disable a plugin in a workspace; its data is kept.")
    @OptionGroup var connection: ConnectionOptions
    @Argument var workspace: String
    @Argument var plugin: String

    func run() async throws {
        _ = try await connection.client().send(.DELETE, "/v1/workspaces/\(workspace)/plugins/\(plugin)")
        print("disabled \(plugin) in \(workspace)")
    }
}

struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters", abstract: "List, replay and discard a workspace's event deliveries that were given up (tenant admin).",
        subcommands: [List.self, Replay.self, Discard.self], defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        @OptionGroup var connection: ConnectionOptions
        @Argument var workspace: String
        @Option(help: "Only those of this subscribing plugin.") var plugin: String?
        @Option(help: "States, comma-separated: dead, replay, delivered, discarded (default: dead,replay).") var state: String?
        @Option(help: "At most this many, oldest first (1 to 1000).") var limit: Int = 100

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let plugin { query.append("plugin=\(plugin.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? plugin)") }
            if let state { query.append("state=\(state.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? state)") }
            let data = try await connection.client().send(.GET, "/v1/workspaces/\(workspace)/dead-letters?" + query.joined(separator: "&"))
            if connection.json { return printJSON(data) }
            let letters = decodeObject(data)["deadLetters"] as? [[String: Any]] ?? []
            printTable(["ID", "PLUGIN", "EVENT", "TYPE", "ATTEMPTS", "STATE", "LAST ERROR"], letters.map { letter in
                let event = letter["event"] as? [String: Any]
                return [text(letter["id"]), text(letter["pluginId"]), text(event?["id"]), text(event?["type"]), text(letter["attempts"]), text(letter["state"]),
                        String(text(letter["lastError"]).prefix(60))]
            })
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deliver one dead letter again, or with --all every waiting one of the workspace.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var workspace: String
        @Argument var id: String?
        @Flag(help: "Every dead letter of the workspace in state dead.") var all = false

        func validate() throws {
            if all == (id != nil) { throw ValidationError("give a dead letter's id, or --all (not both)") }
        }

        func run() async throws {
            let path = id.map { "/v1/workspaces/\(workspace)/dead-letters/\($0)/replay" } ?? "/v1/workspaces/\(workspace)/dead-letters/replay"
            let data = try await connection.client().send(.POST, path)
            if connection.json { return printJSON(data) }
            let ids = decodeObject(data)["replaying"] as? [String] ?? []
            print("replaying \(ids.count) dead letter\(ids.count == 1 ? "" : "s") in \(workspace)" + (ids.isEmpty ? "" : ": " + ids.joined(separator: ", ")))
        }
    }

    struct Discard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give up on a dead letter for good; it is pruned with the workspace's old events.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var workspace: String
        @Argument var id: String

        func run() async throws {
            _ = try await connection.client().send(.DELETE, "/v1/workspaces/\(workspace)/dead-letters/\(id)")
            print("discarded dead letter \(id) in \(workspace)")
        }
    }
}
