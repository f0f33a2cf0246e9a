import Hummingbird
import Synchronization

/// Resolves `Authorization: Bearer <token>` to a ``Principal``; 401 when absent or unknown.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              let principal = try await authenticator.principal(token: String(header.dropFirst("Bearer ".count)))
        else { throw HostError.unauthorized() }
        var context = context
        context.principal = principal
        context.logger[metadataKey: "token.id"] = "\(principal.tokenID)"
        return try await next(request, context)
    }
}

/// Looks tokens up by their hash, remembering the ones it has seen so requests skip the store.
final class Authenticator: Sendable {
    private let store: any HostStore
    private let cache = Mutex<[String: Principal]>([:])

    init(store: any HostStore) {
        self.store = store
    }

    func principal(token: String) async throws -> Principal? {
        let hash = APIToken.hash(token)
        if let principal = cache.withLock({ $0[hash] }) { return principal }
        guard let record = try await store.token(secretHash: hash) else { return nil }
        let principal = Principal(tokenID: record.id, subject: record.subject, role: record.role, tenantID: record.tenantID, workspaces: Set(record.workspaces))
        cache.withLock { $0[hash] = principal }
        return principal
    }
}
