import Crypto
import HTTPTypes
import Hummingbird
import Synchronization

/// Resolves `Authorization: Bearer <token>` to a ``Principal``; 401 when absent or unknown.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let authenticator: Authenticator
    /// Until it has read its registry from the store (PostgreSQL not reached yet), the API answers 503
    /// `STORE_UNAVAILABLE` rather than as if nothing were installed.
    let runtime: PluginRuntime

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard runtime.isReady else { throw HostError.storeUnavailable }
        guard let token = request.headers.bearerToken, let principal = try await authenticator.principal(token: token)
        else { throw HostError.unauthenticated }
        // The context's logger adds token.id from the principal when it is used.
        var context = context
        context.principal = principal
        do {
            return try await next(request, context)
        } catch {
            // The error middleware holds the context as it was before this one: tell it who called.
            throw AuthenticatedFailure(underlying: error, principal: principal)
        }
    }
}

/// An error thrown while serving an authenticated request, with the principal that made it, so that
/// ``ErrorMiddleware`` (outside ``AuthMiddleware``) logs it with the caller's `token.id`.
struct AuthenticatedFailure: Error {
    var underlying: any Error
    var principal: Principal
}

/// Looks tokens up by their hash, remembering the ones it has seen so requests skip the store. The
/// cache is keyed by the SHA-256 digest, never the token, and the token's bytes are hashed where they
/// are: no copy of the secret, and no hex text unless the store is asked.
///
/// A token revoked on this host is forgotten at once. Hosts sharing a database learn of a revocation by
/// reading the token again: an entry is trusted for ``cacheLifetime``. While the store cannot be read,
/// a token read before stays accepted, as it was before it expired from the cache.
final class Authenticator: Sendable {
    private struct Entry {
        var principal: Principal
        var readAt: ContinuousClock.Instant
    }

    private struct Cache {
        var entries: [SHA256Digest: Entry] = [:]
        /// Bumped by every revocation: a store read that began before one is not cached.
        var revocations = 0
    }

    private let store: any HostStore
    private let cache = Mutex(Cache())
    let cacheLifetime: Duration

    init(store: any HostStore, cacheLifetime: Duration = .seconds(5)) {
        self.store = store
        self.cacheLifetime = cacheLifetime
    }

    func principal(token: Substring) async throws -> Principal? {
        let digest = APIToken.digest(token)
        let now = ContinuousClock.now
        let (cached, revocations) = cache.withLock { ($0.entries[digest], $0.revocations) }
        if let cached, now - cached.readAt < cacheLifetime { return cached.principal }
        let record: TokenRecord?
        do {
            record = try await store.token(secretHash: digest.hexString)
        } catch let error as StoreError where error.code == .unavailable {
            guard let cached else { throw error }
            return cached.principal
        }
        guard let record else {
            cache.withLock { _ = $0.entries.removeValue(forKey: digest) }
            return nil
        }
        let principal = Principal(tokenID: record.id, subject: record.subject, role: record.role, tenantID: record.tenantID, workspaces: Set(record.workspaces))
        cache.withLock { cache in
            // A revocation ran while the store was read: this read may predate it, so it is not kept.
            if cache.revocations == revocations { cache.entries[digest] = Entry(principal: principal, readAt: now) }
        }
        return principal
    }

    /// Drops a revoked token from the cache, and keeps reads that were in flight from putting it back.
    func forget(tokenID: String) {
        cache.withLock { cache in
            cache.revocations += 1
            cache.entries = cache.entries.filter { $0.value.principal.tokenID != tokenID }
        }
    }
}
