import Foundation
import Logging
import PluginSDK

/// API tokens as tenant and platform admins manage them: made (shown once, stored hashed), listed
/// without secrets, revoked (never the last platform admin token), and the platform admin token a host
/// is started with, registered once.
struct TokenAdministration: Sendable {
    let store: any HostStore
    let registry: PluginRegistry
    let authenticator: Authenticator
    let logger: Logger

    /// A token of `tenantID`: a tenant admin's, or a member's of some of the tenant's workspaces.
    func create(tenantID: String, role: String, subject: String, workspaces: [String]) async throws -> (APIToken.Minted, TokenRecord) {
        guard let role = CallerRole(rawValue: role), role != .platformAdmin else {
            throw HostError.invalidInput("role must be tenant-admin or member, not \"\(role)\"")
        }
        try Self.check(subject: subject)
        if role == .member && workspaces.isEmpty {
            throw HostError.invalidInput("a member token needs the workspaces it may use: give workspaces: [\"...\"]")
        }
        for id in workspaces where registry.workspace(id: id)?.tenantID != tenantID {
            throw HostError.invalidInput("workspaces: \(id) is not a workspace of tenant \(tenantID)")
        }
        return try await mint(role: role, subject: subject, tenantID: tenantID, workspaces: workspaces)
    }

    /// A new platform admin token, to hand to another admin or to rotate one: make the new one, then
    /// revoke the old.
    func createPlatformToken(subject: String, by principal: Principal) async throws -> (APIToken.Minted, TokenRecord) {
        try Self.check(subject: subject)
        let made = try await mint(role: .platformAdmin, subject: subject, tenantID: nil, workspaces: [])
        logger.info("platform admin token created", metadata: ["token.id": "\(made.0.id)", "by": "\(principal.tokenID)"])
        return made
    }

    /// A tenant's tokens, or with `nil` the platform admins', without their secrets (the host has only
    /// their hashes).
    func list(tenantID: String?) async throws -> [TokenRecord] {
        try await store.tokens(tenantID: tenantID)
    }

    /// Revokes a token of the tenant: it is refused from the next request on (on other hosts sharing the
    /// database, within the authenticator's cache lifetime).
    func revoke(id: String, tenantID: String, by principal: Principal) async throws {
        guard try await store.deleteToken(id: id, tenantID: tenantID) else { throw HostError.tokenNotFound(id, tenant: tenantID) }
        authenticator.forget(tokenID: id)
        logger.info("token revoked", metadata: ["tenant.id": "\(tenantID)", "token.id": "\(id)", "by": "\(principal.tokenID)"])
    }

    /// Revokes a platform admin token, the caller's own included, but never the last one, so that the
    /// host keeps an administrator. The token a host is started with stays revoked across restarts.
    func revokePlatformToken(id: String, by principal: Principal) async throws {
        guard let record = try await store.tokens(tenantID: nil).first(where: { $0.id == id }) else { throw HostError.tokenNotFound(id, tenant: nil) }
        guard try await store.deleteToken(id: id, tenantID: nil) else { throw HostError.lastPlatformToken(id) }
        authenticator.forget(tokenID: id)
        try await store.setSetting(Self.revokedAdminTokenSetting(hash: record.secretHash), ISO8601DateFormatter().string(from: Date()))
        logger.info("platform admin token revoked", metadata: ["token.id": "\(id)", "by": "\(principal.tokenID)"])
    }

    private func mint(role: CallerRole, subject: String, tenantID: String?, workspaces: [String]) async throws -> (APIToken.Minted, TokenRecord) {
        let minted = APIToken.mint()
        let record = TokenRecord(id: minted.id, secretHash: minted.secretHash, role: role, subject: subject, tenantID: tenantID, workspaces: workspaces, createdAt: Date())
        try await store.createToken(record)
        return (minted, record)
    }

    private static func check(subject: String) throws(HostError) {
        guard !subject.isEmpty, subject.count <= 200, !subject.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidInput("subject must have 1 to 200 characters without control characters")
        }
    }

    /// Makes sure a platform admin token exists: the configured one, or one generated and announced once.
    static func ensureAdminToken(configuration: HostConfiguration, store: any HostStore, announce: @Sendable (String) -> Void, logger: Logger) async throws {
        let marker = "admin.token.issued"
        if let token = configuration.adminToken {
            let hash = APIToken.hash(token)
            if try await store.setting(revokedAdminTokenSetting(hash: hash)) != nil {
                // Revoked through the API: registering it again would undo that.
                logger.warning("the configured admin token (--admin-token or PLUGIN_HOST_ADMIN_TOKEN) was revoked and is not accepted; remove it, or set a new one")
            } else if try await store.token(secretHash: hash) == nil {
                try await store.createToken(TokenRecord(
                    id: "admin-" + hash.prefix(8), secretHash: hash, role: .platformAdmin, subject: "platform-admin", tenantID: nil, workspaces: [], createdAt: Date()
                ))
            }
            try await store.setSetting(marker, "configured")
        } else if try await store.setting(marker) == nil {
            let minted = APIToken.mint()
            try await store.createToken(TokenRecord(
                id: minted.id, secretHash: minted.secretHash, role: .platformAdmin, subject: "platform-admin", tenantID: nil, workspaces: [], createdAt: Date()
            ))
            try await store.setSetting(marker, "generated")
            announce(minted.token)
        }
    }

    /// The setting that marks the configured admin token with this hash as revoked, so that a restart with
    /// the same `--admin-token` does not register it again.
    static func revokedAdminTokenSetting(hash: String) -> String {
        "admin.token.revoked." + hash
    }
}
