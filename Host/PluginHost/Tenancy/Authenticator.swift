import Crypto
import Synchronization

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
