import Crypto
import Foundation
import Logging
import PluginSDK

/// Safe client retries: a request that carries `Idempotency-Key` runs once per key (per workspace,
/// plugin and caller); a repeat of it gets the first answer, without the plugin running again.
struct Idempotency: Sendable {
    let store: any HostStore
    /// How long a key's answer is kept.
    let retention: Duration
    /// A key whose request started longer ago than this and never finished was abandoned (its host
    /// died): the plugin's time limit, and a margin.
    let abandonedAfter: Duration
    let logger: Logger

    /// The longest key accepted, in bytes.
    static let maximumKeyBytes = 255

    /// A key's form: 1 to 255 visible ASCII characters.
    static func isValid(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= maximumKeyBytes && key.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// What makes two requests the same: method, path, query and body.
    static func requestHash(method: String, path: String, query: String?, body: Data) -> String {
        var hash = SHA256()
        hash.update(data: Data("\(method)\n\(path)\n\(query ?? "")\n".utf8))
        hash.update(data: body)
        return hash.finalize().hexString
    }

    /// Runs `body` once for the key: its answer is kept and returned (`replayed` false); for a repeat, the
    /// kept answer (`replayed` true). A repeat while the first still runs, or the key used for another
    /// request, is refused. An answer the plugin gave is kept, whatever its status; a failure of the host
    /// (the plugin crashed, timed out, the store was down) gives the key up, so a retry runs it.
    func run(
        _ scope: IdempotencyScope, requestHash: String, _ body: () async throws -> PluginResponse
    ) async throws -> (response: PluginResponse, replayed: Bool) {
        let now = Date()
        let existing: IdempotencyRecord?
        do {
            existing = try await store.claimIdempotencyKey(
                scope, requestHash: requestHash, now: now, staleBefore: now - abandonedAfter.timeInterval, expiredBefore: now - retention.timeInterval)
        } catch let error as StoreError where error.code == .unavailable {
            throw HostError.storeUnavailable
        } catch let error as StoreError {
            throw HostError.internalFailure("the idempotency key could not be read: \(error)")
        }
        if let existing {
            guard existing.requestHash == requestHash else { throw HostError.idempotencyKeyReused(scope.key) }
            guard let response = existing.response else { throw HostError.idempotencyKeyInFlight(scope.key) }
            return (response, true)
        }
        let response: PluginResponse
        do {
            response = try await body()
        } catch {
            do {
                try await store.releaseIdempotencyKey(scope)
            } catch {
                logger.error("idempotency key could not be given up; a retry is refused until it is abandoned", metadata: [
                    "workspace.id": "\(scope.workspaceID)", "plugin.id": "\(scope.pluginID)", "error": "\(error)"])
            }
            throw error
        }
        do {
            try await store.completeIdempotencyKey(scope, with: response)
        } catch {
            // The caller still gets the answer; a retry is refused until the key counts as abandoned.
            logger.error("idempotency key's answer could not be kept", metadata: [
                "workspace.id": "\(scope.workspaceID)", "plugin.id": "\(scope.pluginID)", "error": "\(error)"])
        }
        return (response, false)
    }
}

extension Duration {
    /// In seconds, as Foundation counts time.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
