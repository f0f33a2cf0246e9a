import Foundation
import Hummingbird
import PluginSDK

/// The `/v1` admin routes: plugins (platform admins), tenants, tokens, workspaces and enablements.
struct AdminController {
    let runtime: PluginRuntime
    let store: any HostStore
    let authenticator: Authenticator

    var maxBodySize: Int { runtime.configuration.maxBodySize }

    func addRoutes(to group: RouterGroup<HostRequestContext>) {
        group.post("plugins", use: installPlugin)
        group.get("plugins", use: listPlugins)
        group.get("plugins/:pluginId", use: getPlugin)
        group.delete("plugins/:pluginId", use: deletePlugin)
        group.post("plugins/:pluginId/install-secret", use: rotateInstallSecret)
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
    }

    // MARK: Plugins

    @Sendable func installPlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let accepted = ["", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json"]
        guard accepted.contains(contentType) else {
            throw HostError.unsupportedMediaType(contentType)
        }
        let text = String(buffer: try await request.collectBody(limit: maxBodySize))
        // The manifest's relative library path resolves against `base` when given (the CLI sends the
        // manifest file's folder), otherwise against the host's manifests folder.
        let base = request.uri.queryParameters["base"].map(String.init)
            ?? runtime.configuration.manifestsDirectory ?? FileManager.default.currentDirectoryPath
        let status = try await runtime.administration.install(manifestText: text, baseDirectory: base)
        return try .json(API.PluginView(status), status: .created)
    }

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
        guard let role = CallerRole(rawValue: body.role), role != .platformAdmin else {
            throw HostError.invalidInput("role must be tenant-admin or member, not \"\(body.role)\"")
        }
        try Self.check(subject: body.subject)
        let workspaces = body.workspaces ?? []
        if role == .member && workspaces.isEmpty {
            throw HostError.invalidInput("a member token needs the workspaces it may use: give workspaces: [\"...\"]")
        }
        for id in workspaces {
            guard runtime.registry.workspace(id: id)?.tenantID == tenantID else {
                throw HostError.invalidInput("workspaces: \(id) is not a workspace of tenant \(tenantID)")
            }
        }
        let minted = APIToken.mint()
        try await store.createToken(TokenRecord(
            id: minted.id, secretHash: minted.secretHash, role: role, subject: body.subject, tenantID: tenantID, workspaces: workspaces, createdAt: Date()
        ))
        return try .json(API.TokenView(token: minted.token, id: minted.id, role: role.rawValue, subject: body.subject, tenantId: tenantID, workspaces: workspaces), status: .created)
    }

    /// The tenant's tokens, without their secrets (the host has only their hashes).
    @Sendable func listTokens(_ request: Request, context: HostRequestContext) async throws -> Response {
        let tenantID = try await administeredTenant(context)
        let tokens = try await store.tokens(tenantID: tenantID)
        return try .json(API.TokenList(tokens: tokens.map(API.TokenInfo.init)))
    }

    /// Revokes a token of the tenant: it is refused from the next request on (on other hosts sharing the
    /// database, within the authenticator's cache lifetime).
    @Sendable func revokeToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        let tenantID = try await administeredTenant(context)
        let principal = try context.requirePrincipal()
        let tokenID = try context.parameters.require("tokenId")
        guard try await store.deleteToken(id: tokenID, tenantID: tenantID) else {
            throw HostError.tokenNotFound(tokenID, tenant: tenantID)
        }
        authenticator.forget(tokenID: tokenID)
        runtime.logger.info("token revoked", metadata: ["tenant.id": "\(tenantID)", "token.id": "\(tokenID)", "by": "\(principal.tokenID)"])
        return Response(status: .noContent)
    }

    // MARK: Platform admin tokens

    /// A new platform admin token, to hand to another admin or to rotate one: make the new one, then
    /// revoke the old.
    @Sendable func createPlatformToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let principal = try context.requirePrincipal()
        let body = try await request.decodeJSON(API.NewPlatformToken.self, limit: maxBodySize)
        try Self.check(subject: body.subject)
        let minted = APIToken.mint()
        try await store.createToken(TokenRecord(
            id: minted.id, secretHash: minted.secretHash, role: .platformAdmin, subject: body.subject, tenantID: nil, workspaces: [], createdAt: Date()
        ))
        runtime.logger.info("platform admin token created", metadata: ["token.id": "\(minted.id)", "by": "\(principal.tokenID)"])
        return try .json(API.TokenView(token: minted.token, id: minted.id, role: CallerRole.platformAdmin.rawValue, subject: body.subject, tenantId: nil, workspaces: []),
                         status: .created)
    }

    /// The platform admins' tokens, without their secrets.
    @Sendable func listPlatformTokens(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        return try .json(API.TokenList(tokens: try await store.tokens(tenantID: nil).map(API.TokenInfo.init)))
    }

    /// Revokes a platform admin token, the caller's own included, but never the last one: 409
    /// `LAST_PLATFORM_TOKEN` then, so that the host keeps an administrator.
    @Sendable func revokePlatformToken(_ request: Request, context: HostRequestContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let principal = try context.requirePrincipal()
        let tokenID = try context.parameters.require("tokenId")
        guard let record = try await store.tokens(tenantID: nil).first(where: { $0.id == tokenID }) else {
            throw HostError.tokenNotFound(tokenID, tenant: nil)
        }
        guard try await store.deleteToken(id: tokenID, tenantID: nil) else {
            throw HostError.lastPlatformToken(tokenID)
        }
        authenticator.forget(tokenID: tokenID)
        // Should it be the one a host is started with (--admin-token), a restart must not bring it back.
        try await store.setSetting(revokedAdminTokenSetting(hash: record.secretHash), ISO8601DateFormatter().string(from: Date()))
        runtime.logger.info("platform admin token revoked", metadata: ["token.id": "\(tokenID)", "by": "\(principal.tokenID)"])
        return Response(status: .noContent)
    }

    private static func check(subject: String) throws {
        guard !subject.isEmpty, subject.count <= 200, !subject.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw HostError.invalidInput("subject must have 1 to 200 characters without control characters")
        }
    }

    // MARK: Enablements

    @Sendable func enablePlugin(_ request: Request, context: HostRequestContext) async throws -> Response {
        let (workspace, principal) = try administeredWorkspace(context)
        let body = try await request.decodeJSON(API.EnableRequest.self, limit: maxBodySize)
        let enablement = try await runtime.administration.enable(
            workspace: workspace, pluginID: try context.parameters.require("pluginId"), grants: body.grants ?? [], config: body.config ?? [:], caller: principal.caller
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
