import Foundation
import Hummingbird
import PluginSDK

/// The `/v1` admin routes: plugins (platform admins), tenants, tokens, workspaces and enablements.
struct AdminController {
    let runtime: PluginRuntime
    let store: any HostStore
    let tokens: TokenAdministration

    var maxBodySize: Int { runtime.configuration.maxBodySize }

    func addRoutes(to group: RouterGroup<HostRequestContext>) {
        group.post("plugins", use: installPlugin)
        group.get("plugins", use: listPlugins)
        group.get("plugins/:pluginId", use: getPlugin)
        group.delete("plugins/:pluginId", use: deletePlugin)
        group.post("plugins/:pluginId/install-secret", use: rotateInstallSecret)
        group.delete("plugins/:pluginId/quarantine", use: liftQuarantine)
        group.post("tokens", use: createPlatformToken)
        group.get("tokens", use: listPlatformTokens)
        group.delete("tokens/:tokenId", use: revokePlatformToken)
        group.post("tenants", use: createTenant)
        group.get("tenants", use: listTenants)
        group.post("tenants/:tenantId/tokens", use: createToken)
        group.get("tenants/:tenantId/tokens", use: listTokens)
        group.delete("tenants/:tenantId/tokens/:tokenId", use: revokeToken)
        group.post("tenants/:tenantId/workspaces", use: createWorkspace)
        group.get("tenants/:tenantId/workspaces", use: listWorkspaces)
        group.put("workspaces/:ws/plugins/:pluginId", use: enablePlugin)
        group.get("workspaces/:ws/plugins", use: listEnablements)
        group.delete("workspaces/:ws/plugins/:pluginId", use: disablePlugin)
        group.get("workspaces/:ws/dead-letters", use: listDeadLetters)
        group.post("workspaces/:ws/dead-letters/replay", use: replayDeadLetters)
        group.post("workspaces/:ws/dead-letters/:id/replay", use: replayDeadLetter)
        group.delete("workspaces/:ws/dead-letters/:id", use: discardDeadLetter)
    }

    // MARK: Plugins

    @Sendable func installPlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let accepted = ["", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json", Self.bundleType]
        guard accepted.contains(contentType) else {
            throw HostError.unsupportedMediaType(contentType)
        }
        // The manifest's relative library path resolves against `base` when given (the CLI sends the
        // manifest file's folder), otherwise against the host's manifests folder.
        let base = request.uri.queryParameters["base"].map(String.init)
            ?? runtime.configuration.manifestsDirectory ?? FileManager.default.currentDirectoryPath
        // The platform admin's choice of isolation overrides the manifest's.
        var isolation: PluginManifest.Runtime.Isolation?
        if let value = request.uri.queryParameters["isolation"].map(String.init) {
            guard let parsed = PluginManifest.Runtime.Isolation(rawValue: value) else {
                throw HostError.invalidInput("isolation \"\(value)\" is not one; use worker or in-process")
            }
            isolation = parsed
        }
        let status: PluginStatus
        if contentType == Self.bundleType {
            let bytes = try await request.collectBody(limit: runtime.configuration.maxBundleSize)
            status = try await runtime.administration.install(bundle: Data(buffer: bytes), isolation: isolation)
        } else {
            let text = String(buffer: try await request.collectBody(limit: maxBodySize))
            status = try await runtime.administration.install(manifestText: text, baseDirectory: base, isolation: isolation)
        }
        return try .json(API.PluginView(status), status: .created)
    }

    /// A plugin bundle (`plugin-host pack`), as `POST /v1/plugins` takes one.
    static let bundleType = "application/vnd.plugin-host.bundle"

    @Sendable func listPlugins(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        return try .json(API.PluginList(plugins: runtime.registry.plugins().map(API.PluginView.init)))
    }

    @Sendable func getPlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let id = try context.parameters.require("pluginId")
        guard let status = runtime.registry.plugin(id: id) else { throw HostError.pluginNotFound(id) }
        return try .json(API.PluginView(status))
    }

    @Sendable func deletePlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        try await runtime.administration.uninstall(id: try context.parameters.require("pluginId"))
        return Response(status: .noContent)
    }

    @Sendable func rotateInstallSecret(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let id = try context.parameters.require("pluginId")
        let secret = try await runtime.administration.rotateInstallSecret(id: id)
        return try .json(API.InstallSecret(pluginId: id, installSecret: secret), status: .created)
    }

    @Sendable func liftQuarantine(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        try await runtime.administration.liftQuarantine(id: try context.parameters.require("pluginId"))
        return Response(status: .noContent)
    }

    // MARK: Tenants and workspaces

    @Sendable func createTenant(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let body = try await request.decodeJSON(API.NewTenant.self, limit: maxBodySize)
        let tenant = try await runtime.administration.createTenant(id: body.id, name: body.name)
        return try .json(API.TenantView(id: tenant.id, name: tenant.name, createdAt: tenant.createdAt), status: .created)
    }

    @Sendable func listTenants(_ request: Request, context: HostRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let tenants = try await store.tenants().filter { principal.role == .platformAdmin || $0.id == principal.tenantID }
        return try .json(API.TenantList(tenants: tenants.map { API.TenantView(id: $0.id, name: $0.name, createdAt: $0.createdAt) }))
    }

    @Sendable func createWorkspace(_ request: Request, context: HostRequestContext) async throws -> Response {
        let tenantID = try await administeredTenant(context)
        let body = try await request.decodeJSON(API.NewWorkspace.self, limit: maxBodySize)
        let workspace = try await runtime.administration.createWorkspace(id: body.id, name: body.name, tenantID: tenantID)
        return try .json(API.WorkspaceView(workspace), status: .created)
    }

    @Sendable func listWorkspaces(_ request: Request, context: HostRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let tenantID = try context.parameters.require("tenantId")
        guard principal.role == .platformAdmin || principal.tenantID == tenantID, try await store.tenant(id: tenantID) != nil else {
            throw HostError.tenantNotFound(tenantID)
        }
        let workspaces = try await store.workspaces(tenantID: tenantID).filter(principal.canUse)
        return try .json(API.WorkspaceList(workspaces: workspaces.map(API.WorkspaceView.init)))
    }

    @Sendable func createToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        let tenantID = try await administeredTenant(context)
        let body = try await request.decodeJSON(API.NewToken.self, limit: maxBodySize)
        let (minted, record) = try await tokens.create(tenantID: tenantID, role: body.role, subject: body.subject, workspaces: body.workspaces ?? [])
        return try .json(API.TokenView(minted: minted, record), status: .created)
    }

    /// The tenant's tokens, without their secrets (the host has only their hashes).
    @Sendable func listTokens(_ request: Request, context: HostRequestContext) async throws -> Response {
        let tenantID = try await administeredTenant(context)
        return try .json(API.TokenList(tokens: try await tokens.list(tenantID: tenantID).map(API.TokenInfo.init)))
    }

    @Sendable func revokeToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        let tenantID = try await administeredTenant(context)
        try await tokens.revoke(id: try context.parameters.require("tokenId"), tenantID: tenantID, by: try context.requirePrincipal())
        return Response(status: .noContent)
    }

    // MARK: Platform admin tokens

    @Sendable func createPlatformToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let body = try await request.decodeJSON(API.NewPlatformToken.self, limit: maxBodySize)
        let (minted, record) = try await tokens.createPlatformToken(subject: body.subject, by: try context.requirePrincipal())
        return try .json(API.TokenView(minted: minted, record), status: .created)
    }

    @Sendable func listPlatformTokens(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        return try .json(API.TokenList(tokens: try await tokens.list(tenantID: nil).map(API.TokenInfo.init)))
    }

    @Sendable func revokePlatformToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        try await tokens.revokePlatformToken(id: try context.parameters.require("tokenId"), by: try context.requirePrincipal())
        return Response(status: .noContent)
    }

    // MARK: Enablements

    @Sendable func enablePlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, principal) = try administeredWorkspace(context)
        let body = try await request.decodeJSON(API.EnableRequest.self, limit: maxBodySize)
        let enablement = try await runtime.administration.enable(
            workspace: workspace, pluginID: try context.parameters.require("pluginId"), grants: body.grants, config: body.config, caller: principal.caller
        )
        return try .json(API.EnablementView(runtime.registry.masked(enablement)))
    }

    @Sendable func listEnablements(_ request: Request, context: HostRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workspace = try visibleWorkspace(runtime, context, principal)
        guard principal.canUse(workspace) else { throw HostError.forbidden("this token may not use workspace \(workspace.id)") }
        return try .json(API.EnablementList(plugins: runtime.registry.enablements(workspaceID: workspace.id).map { API.EnablementView(runtime.registry.masked($0)) }))
    }

    @Sendable func disablePlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, principal) = try administeredWorkspace(context)
        try await runtime.administration.disable(workspace: workspace, pluginID: try context.parameters.require("pluginId"), caller: principal.caller)
        return Response(status: .noContent)
    }

    // MARK: Dead letters

    @Sendable func listDeadLetters(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, _) = try administeredWorkspace(context)
        let query = request.uri.queryParameters
        var states: [DeadLetter.State] = [.dead, .replay]
        if let text = query["state"].map(String.init) {
            states = try text.split(separator: ",").map { name in
                guard let state = DeadLetter.State(rawValue: String(name)) else {
                    throw HostError.invalidInput("state \"\(name)\" is not one; use dead, replay, delivered or discarded (comma-separated)")
                }
                return state
            }
        }
        let limit = try query["limit"].map { text in
            guard let limit = Int(text) else { throw HostError.invalidInput("limit must be a number, not \(text)") }
            return limit
        } ?? 100
        let letters = try await runtime.deadLetters(workspaceID: workspace.id, pluginID: query["plugin"].map(String.init), states: states, limit: limit)
        return try .json(API.DeadLetterList(deadLetters: letters.map(API.DeadLetterView.init)))
    }

    @Sendable func replayDeadLetters(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, _) = try administeredWorkspace(context)
        let ids = try await runtime.replayDeadLetters(workspaceID: workspace.id, id: nil)
        return try .json(API.Replayed(replaying: ids), status: .accepted)
    }

    @Sendable func replayDeadLetter(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, _) = try administeredWorkspace(context)
        let ids = try await runtime.replayDeadLetters(workspaceID: workspace.id, id: try context.parameters.require("id"))
        return try .json(API.Replayed(replaying: ids), status: .accepted)
    }

    @Sendable func discardDeadLetter(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, _) = try administeredWorkspace(context)
        try await runtime.discardDeadLetter(workspaceID: workspace.id, id: try context.parameters.require("id"))
        return Response(status: .noContent)
    }

    // MARK: Authorization

    private func requirePlatformAdmin(_ context: HostRequestContext) throws {
        guard try context.requirePrincipal().role == .platformAdmin else {
            throw HostError.forbidden("this route needs a platform-admin token")
        }
    }

    /// The tenant of the path, which the principal must administer. Another tenant is reported as not
    /// found so that tokens cannot probe which tenants exist.
    private func administeredTenant(_ context: HostRequestContext) async throws -> String {
        let principal = try context.requirePrincipal()
        let tenantID = try context.parameters.require("tenantId")
        guard principal.role == .platformAdmin || principal.tenantID == tenantID, try await store.tenant(id: tenantID) != nil else {
            throw HostError.tenantNotFound(tenantID)
        }
        guard principal.administers(tenantID: tenantID) else { throw HostError.forbidden("this route needs a tenant-admin token of \(tenantID)") }
        return tenantID
    }

    private func administeredWorkspace(_ context: HostRequestContext) throws -> (Workspace, Principal) {
        let principal = try context.requirePrincipal()
        let workspace = try visibleWorkspace(runtime, context, principal)
        guard principal.administers(tenantID: workspace.tenantID) else {
            throw HostError.forbidden("this route needs a tenant-admin token of \(workspace.tenantID)")
        }
        return (workspace, principal)
    }
}

/// The workspace of the path as the principal may see it: another tenant's workspace is not found.
func visibleWorkspace(_ runtime: PluginRuntime, _ context: HostRequestContext, _ principal: Principal) throws -> Workspace {
    try visibleWorkspace(runtime, id: context.parameters.require("ws"), principal)
}

/// The workspace `id` as the principal may see it: another tenant's workspace is not found.
func visibleWorkspace(_ runtime: PluginRuntime, id: String, _ principal: Principal) throws -> Workspace {
    guard let workspace = runtime.registry.workspace(id: id), principal.role == .platformAdmin || principal.tenantID == workspace.tenantID else {
        throw HostError.workspaceNotFound(id)
    }
    return workspace
}
