import Foundation
import PluginSDK

/// The statements of idempotency keys, the same for SQLite and PostgreSQL.
enum IdempotencySQL {
    private static let key = "workspace_id = $1 AND plugin_id = $2 AND caller = $3 AND key = $4"

    private static func values(_ scope: IdempotencyScope) -> [StoreValue] {
        [.text(scope.workspaceID), .text(scope.pluginID), .text(scope.caller), .text(scope.key)]
    }

    /// Forgets this key if its request was abandoned or it expired, and the plugin's other expired keys.
    static func clear(_ scope: IdempotencyScope, staleBefore: Date, expiredBefore: Date) -> StoreStatement {
        StoreStatement(
            "DELETE FROM idempotency_keys WHERE workspace_id = $1 AND plugin_id = $2 "
                + "AND ((caller = $3 AND key = $4 AND status IS NULL AND created_at < $5) OR created_at < $6)",
            values(scope) + [.real(staleBefore.timeIntervalSince1970), .real(expiredBefore.timeIntervalSince1970)])
    }

    /// `claim` names this taking of the key: only it completes or releases the row, so a request that
    /// was taken for abandoned and finishes late touches nothing.
    static func claim(_ scope: IdempotencyScope, requestHash: String, claim: String, now: Date) -> StoreStatement {
        StoreStatement(
            "INSERT INTO idempotency_keys (workspace_id, plugin_id, caller, key, request_hash, claim, status, headers, body, created_at) "
                + "VALUES ($1, $2, $3, $4, $5, $6, NULL, '{}', $7, $8) ON CONFLICT (workspace_id, plugin_id, caller, key) DO NOTHING RETURNING key",
            values(scope) + [.text(requestHash), .text(claim), .blob(Data()), .real(now.timeIntervalSince1970)])
    }

    static func read(_ scope: IdempotencyScope) -> StoreStatement {
        StoreStatement("SELECT request_hash, status, headers, body FROM idempotency_keys WHERE \(key)", values(scope))
    }

    static func complete(_ scope: IdempotencyScope, claim: String, _ response: PluginResponse) throws -> StoreStatement {
        let headers = String(decoding: try JSONEncoder().encode(response.headers), as: UTF8.self)
        return StoreStatement(
            "UPDATE idempotency_keys SET status = $6, headers = $7, body = $8 WHERE \(key) AND claim = $5 AND status IS NULL",
            values(scope) + [.text(claim), .integer(Int64(response.status)), .text(headers), .blob(response.body)])
    }

    static func release(_ scope: IdempotencyScope, claim: String) -> StoreStatement {
        StoreStatement("DELETE FROM idempotency_keys WHERE \(key) AND claim = $5 AND status IS NULL", values(scope) + [.text(claim)])
    }

    static func record(_ row: [some StoreColumn]) throws -> IdempotencyRecord {
        let hash = row[0].string ?? ""
        guard let status = row[1].int64 else { return IdempotencyRecord(requestHash: hash, response: nil) }
        let headers = try JSONDecoder().decode([String: String].self, from: row[2].data ?? Data("{}".utf8))
        return IdempotencyRecord(requestHash: hash, response: PluginResponse(status: Int(status), headers: headers, body: row[3].data ?? Data()))
    }
}
