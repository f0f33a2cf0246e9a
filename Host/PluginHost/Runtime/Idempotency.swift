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
    let logger: Logger

    /// After the plugin's time limit and this margin, a key whose request never finished counts as
    /// abandoned (its host died, or the outcome was unknown) and a retry runs the plugin again.
    static let abandonMargin: Duration = .seconds(60)

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
    /// request, is refused. An answer the plugin gave is kept, whatever its status. When the plugin
    /// certainly did not run the request (it was unavailable, or refused it with a 4xx), the key is given
    /// up and a retry runs it; when the outcome is unknown (a timeout, a crash, a 5xx), the key stays
    /// taken until it counts as abandoned (`callLimit` and a minute), so that a retry cannot run the
    /// plugin a second time while the first may still be working.
    func run(
        _ scope: IdempotencyScope, requestHash: String, callLimit: Duration, _ body: () async throws -> PluginResponse
    ) async throws -> (response: PluginResponse, replayed: Bool) {
        let now = Date()
        let claim = UUID().uuidString
        let existing: IdempotencyRecord?
        do {
            existing = try await store.claimIdempotencyKey(
                scope, requestHash: requestHash, claim: claim, now: now, staleBefore: now - (callLimit + Self.abandonMargin).timeInterval,
                expiredBefore: now - max(retention, callLimit + Self.abandonMargin).timeInterval)
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
            guard Self.certainlyNotRun(error) else { throw error }
            do {
                try await store.releaseIdempotencyKey(scope, claim: claim)
            } catch {
                logger.error("idempotency key could not be given up; a retry is refused until it is abandoned", metadata: [
                    "workspace.id": "\(scope.workspaceID)", "plugin.id": "\(scope.pluginID)", "error": "\(error)"])
            }
            throw error
        }
        do {
            try await store.completeIdempotencyKey(scope, claim: claim, with: response)
        } catch {
            // The caller still gets the answer; a retry is refused until the key counts as abandoned.
            logger.error("idempotency key's answer could not be kept", metadata: [
                "workspace.id": "\(scope.workspaceID)", "plugin.id": "\(scope.pluginID)", "error": "\(error)"])
        }
        return (response, false)
    }
}

extension Idempotency {
    /// Whether the request surely did nothing: the plugin was not reached, or refused it (4xx).
    static func certainlyNotRun(_ error: any Error) -> Bool {
        switch error as? HostError {
        case .pluginUnavailable?, .pluginQuarantined?, .pluginNotEnabled?: true
        case .pluginRefused(let refusal)?: refusal.status < 500
        default: false
        }
    }
}

extension Duration {
    /// In seconds, as Foundation counts time.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
