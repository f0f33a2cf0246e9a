import Foundation
import PluginSDK

/// Where a subscriber is in its workspace's events: the last one it was given (or skipped).
///
/// Events are read in `(tx, seq)` order. On SQLite `tx` is always 0 and `seq` is the commit order (one
/// writer at a time). On PostgreSQL `tx` is the writing transaction's id and only events of transactions
/// older than every one still running are read, so an event whose transaction commits late is read after
/// those before it, never skipped.
package struct EventPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var tx: Int64
    package var seq: Int64

    package init(tx: Int64, seq: Int64) {
        self.tx = tx
        self.seq = seq
    }

    package static func < (lhs: EventPosition, rhs: EventPosition) -> Bool {
        (lhs.tx, lhs.seq) < (rhs.tx, rhs.seq)
    }

    package var description: String { tx == 0 ? "\(seq)" : "\(tx):\(seq)" }
}

/// An event as the store holds it, with its place in the workspace's order.
package struct StoredEvent: Sendable {
    package var position: EventPosition
    package var event: PluginEvent
}

/// A subscriber's lane of delivery in one workspace: its position, and the failed attempts at the event
/// after it.
package struct EventLaneState: Sendable, Equatable {
    package var position: EventPosition
    package var attempts: Int
    package var nextAttemptAt: Date
    package var lastError: String?
}

/// An event delivery given up after its attempts, kept until it is replayed or discarded.
package struct DeadLetter: Sendable {
    package enum State: String, Sendable, CaseIterable {
        /// Given up; waiting for an admin.
        case dead
        /// An admin asked to deliver it again; its subscriber's lane will.
        case replay
        /// Replayed with success.
        case delivered
        /// An admin gave up on it.
        case discarded
    }

    package var id: String
    package var pluginID: String
    package var event: PluginEvent
    package var attempts: Int
    package var lastError: String
    package var state: State
    package var deadAt: Date
    package var updatedAt: Date
}

/// The two SQL dialects the stores speak, where event statements differ.
package enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// `(tx, seq) <op> (position)`, with the position in parameters `$first` and `$first + 1`.
    func compare(_ op: String, _ first: Int) -> String {
        switch self {
        case .sqlite: "seq \(op) $\(first + 1)"
        case .postgres: "(tx, seq) \(op) ($\(first)::text::xid8, $\(first + 1))"
        }
    }

    /// Only events whose transaction has ended, whatever the order transactions commit in.
    var horizon: String {
        switch self {
        case .sqlite: "TRUE"
        case .postgres: "tx < pg_snapshot_xmin(pg_current_snapshot())"
        }
    }

    var txColumn: String {
        switch self {
        case .sqlite: "tx"
        case .postgres: "tx::text::bigint"
        }
    }

    /// The position just before any event not yet readable, for a new lane: it gets what is published
    /// from now on.
    func head(workspace: Int) -> (tx: String, seq: String) {
        switch self {
        case .sqlite: ("0", "(SELECT coalesce(max(seq), 0) FROM events WHERE workspace_id = $\(workspace))")
        case .postgres: ("pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1", "9223372036854775807")
        }
    }
}

/// The statements of durable events, for either dialect. Every one names its workspace, and PostgreSQL
/// runs them in that workspace's scope (row-level security).
enum EventSQL {
    private static let lane = "workspace_id = $1 AND plugin_id = $2"

    static func insert(_ event: PluginEvent) -> StoreStatement {
        StoreStatement(
            "INSERT INTO events (id, workspace_id, type, source_plugin, occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6)",
            [.text(event.id), .text(event.workspaceID), .text(event.type), .text(event.sourcePluginID), .real(event.occurredAt.timeIntervalSince1970),
             .blob(event.payload)])
    }

    /// Takes (or keeps) the lane's lease; no row when another host holds it or the lane does not exist.
    static func claim(workspaceID: String, pluginID: String, owner: String, now: Date, until: Date) -> StoreStatement {
        StoreStatement(
            "UPDATE event_positions SET lease_owner = $3, lease_until = $5 WHERE \(lane) AND (lease_owner = $3 OR lease_until < $4) "
                + "RETURNING tx, seq, attempts, next_attempt_at, last_error",
            [.text(workspaceID), .text(pluginID), .text(owner), .real(now.timeIntervalSince1970), .real(until.timeIntervalSince1970)])
    }

    /// Makes the lane at the head of the workspace's events, unless it exists.
    static func create(_ dialect: SQLDialect, workspaceID: String, pluginID: String) -> StoreStatement {
        let head = dialect.head(workspace: 1)
        return StoreStatement(
            "INSERT INTO event_positions (workspace_id, plugin_id, tx, seq, attempts, next_attempt_at, last_error, lease_owner, lease_until) "
                + "VALUES ($1, $2, \(head.tx), \(head.seq), 0, 0, NULL, '', 0) ON CONFLICT (workspace_id, plugin_id) DO NOTHING",
            [.text(workspaceID), .text(pluginID)])
    }

    static func lane(_ row: [some StoreColumn]) -> EventLaneState {
        EventLaneState(
            position: EventPosition(tx: row[0].int64 ?? 0, seq: row[1].int64 ?? 0), attempts: Int(row[2].int64 ?? 0),
            nextAttemptAt: Date(timeIntervalSince1970: row[3].double ?? 0), lastError: row[4].string)
    }

    static func read(_ dialect: SQLDialect, workspaceID: String, after position: EventPosition, limit: Int) -> StoreStatement {
        StoreStatement(
            "SELECT \(dialect.txColumn), seq, id, type, source_plugin, occurred_at, payload FROM events "
                + "WHERE workspace_id = $1 AND \(dialect.compare(">", 2)) AND \(dialect.horizon) ORDER BY tx, seq LIMIT $4",
            [.text(workspaceID), .integer(position.tx), .integer(position.seq), .integer(Int64(limit))])
    }

    static func event(_ row: [some StoreColumn], workspaceID: String) -> StoredEvent {
        StoredEvent(
            position: EventPosition(tx: row[0].int64 ?? 0, seq: row[1].int64 ?? 0),
            event: PluginEvent(
                id: row[2].string ?? "", type: row[3].string ?? "", workspaceID: workspaceID, sourcePluginID: row[4].string ?? "",
                occurredAt: Date(timeIntervalSince1970: row[5].double ?? 0), payload: row[6].data ?? Data()))
    }

    /// Moves the lane past `position` and clears its failures, if this host still holds it.
    static func advance(workspaceID: String, pluginID: String, owner: String, to position: EventPosition, until: Date) -> StoreStatement {
        StoreStatement(
            "UPDATE event_positions SET tx = $4, seq = $5, attempts = 0, next_attempt_at = 0, last_error = NULL, lease_until = $6 "
                + "WHERE \(lane) AND lease_owner = $3 RETURNING seq",
            [.text(workspaceID), .text(pluginID), .text(owner), .integer(position.tx), .integer(position.seq), .real(until.timeIntervalSince1970)])
    }

    /// Records a failed attempt at the event after the lane's position.
    static func fail(workspaceID: String, pluginID: String, owner: String, attempts: Int, retryAt: Date, error: String) -> StoreStatement {
        StoreStatement(
            "UPDATE event_positions SET attempts = $4, next_attempt_at = $5, last_error = $6 WHERE \(lane) AND lease_owner = $3 RETURNING seq",
            [.text(workspaceID), .text(pluginID), .text(owner), .integer(Int64(attempts)), .real(retryAt.timeIntervalSince1970), .text(error)])
    }

    /// Keeps a given-up delivery, if this host still holds the lane (run with ``advance``, in one
    /// transaction).
    static func bury(_ letter: DeadLetter, workspaceID: String, owner: String) -> StoreStatement {
        StoreStatement(
            "INSERT INTO dead_letters (id, workspace_id, plugin_id, event_id, type, source_plugin, occurred_at, payload, attempts, last_error, state, dead_at, updated_at) "
                + "SELECT $4, $1, $2, $5, $6, $7, $8, $9, $10, $11, 'dead', $12, $12 WHERE EXISTS (SELECT 1 FROM event_positions WHERE \(lane) AND lease_owner = $3)",
            [.text(workspaceID), .text(letter.pluginID), .text(owner), .text(letter.id), .text(letter.event.id), .text(letter.event.type),
             .text(letter.event.sourcePluginID), .real(letter.event.occurredAt.timeIntervalSince1970), .blob(letter.event.payload),
             .integer(Int64(letter.attempts)), .text(letter.lastError), .real(letter.deadAt.timeIntervalSince1970)])
    }

    /// Lets another host take the lane at once.
    static func release(workspaceID: String, pluginID: String, owner: String) -> StoreStatement {
        StoreStatement("UPDATE event_positions SET lease_owner = '', lease_until = 0 WHERE \(lane) AND lease_owner = $3",
                       [.text(workspaceID), .text(pluginID), .text(owner)])
    }

    static func delete(workspaceID: String, pluginID: String) -> StoreStatement {
        StoreStatement("DELETE FROM event_positions WHERE \(lane)", [.text(workspaceID), .text(pluginID)])
    }

    static func lanes(workspaceID: String) -> StoreStatement {
        StoreStatement("SELECT plugin_id, tx, seq FROM event_positions WHERE workspace_id = $1", [.text(workspaceID)])
    }

    /// How many events wait after `position`, counting up to `cap`.
    static func backlog(_ dialect: SQLDialect, workspaceID: String, after position: EventPosition, cap: Int) -> StoreStatement {
        StoreStatement(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE workspace_id = $1 AND \(dialect.compare(">", 2)) LIMIT $4) AS waiting",
            [.text(workspaceID), .integer(position.tx), .integer(position.seq), .integer(Int64(cap))])
    }

    /// Forgets events older than `before` that every lane of the workspace is past.
    static func prune(_ dialect: SQLDialect, workspaceID: String, before: Date, upTo position: EventPosition?) -> StoreStatement {
        guard let position else {
            return StoreStatement("DELETE FROM events WHERE workspace_id = $1 AND occurred_at < $2", [.text(workspaceID), .real(before.timeIntervalSince1970)])
        }
        return StoreStatement(
            "DELETE FROM events WHERE workspace_id = $1 AND occurred_at < $4 AND \(dialect.compare("<=", 2))",
            [.text(workspaceID), .integer(position.tx), .integer(position.seq), .real(before.timeIntervalSince1970)])
    }

    // MARK: Dead letters

    private static let letterColumns = "id, plugin_id, event_id, type, source_plugin, occurred_at, payload, attempts, last_error, state, dead_at, updated_at"

    static func deadLetters(workspaceID: String, pluginID: String?, states: [DeadLetter.State], limit: Int) -> StoreStatement {
        var values: [StoreValue] = [.text(workspaceID), .integer(Int64(limit))]
        var sql = "SELECT \(letterColumns) FROM dead_letters WHERE workspace_id = $1"
        if let pluginID {
            values.append(.text(pluginID))
            sql += " AND plugin_id = $\(values.count)"
        }
        sql += " AND state IN (\(placeholders(states, appendingTo: &values))) ORDER BY dead_at, id LIMIT $2"
        return StoreStatement(sql, values)
    }

    /// `$n, $m, ...` for `states`, whose names are appended to `values`.
    private static func placeholders(_ states: [DeadLetter.State], appendingTo values: inout [StoreValue]) -> String {
        states.map { state in
            values.append(.text(state.rawValue))
            return "$\(values.count)"
        }.joined(separator: ", ")
    }

    static func deadLetter(_ row: [some StoreColumn], workspaceID: String) -> DeadLetter {
        DeadLetter(
            id: row[0].string ?? "", pluginID: row[1].string ?? "",
            event: PluginEvent(
                id: row[2].string ?? "", type: row[3].string ?? "", workspaceID: workspaceID, sourcePluginID: row[4].string ?? "",
                occurredAt: Date(timeIntervalSince1970: row[5].double ?? 0), payload: row[6].data ?? Data()),
            attempts: Int(row[7].int64 ?? 0), lastError: row[8].string ?? "", state: DeadLetter.State(rawValue: row[9].string ?? "") ?? .dead,
            deadAt: Date(timeIntervalSince1970: row[10].double ?? 0), updatedAt: Date(timeIntervalSince1970: row[11].double ?? 0))
    }

    /// Moves dead letters of the workspace (one, by `id`, or all) from one of `from` to `to`; returns their ids.
    static func transition(workspaceID: String, id: String?, from: [DeadLetter.State], to: DeadLetter.State, now: Date) -> StoreStatement {
        var values: [StoreValue] = [.text(workspaceID), .text(to.rawValue), .real(now.timeIntervalSince1970)]
        var sql = "UPDATE dead_letters SET state = $2, updated_at = $3 WHERE workspace_id = $1"
        if let id {
            values.append(.text(id))
            sql += " AND id = $\(values.count)"
        }
        sql += " AND state IN (\(placeholders(from, appendingTo: &values))) RETURNING id"
        return StoreStatement(sql, values)
    }

    /// The outcome of replaying one: delivered, or dead again with one more attempt and its error.
    static func replayed(workspaceID: String, id: String, delivered: Bool, error: String?, now: Date) -> StoreStatement {
        StoreStatement(
            "UPDATE dead_letters SET state = $3, attempts = attempts + 1, last_error = coalesce($4, last_error), updated_at = $5 "
                + "WHERE workspace_id = $1 AND id = $2 AND state = 'replay'",
            [.text(workspaceID), .text(id), .text(delivered ? DeadLetter.State.delivered.rawValue : DeadLetter.State.dead.rawValue), StoreValue(error),
             .real(now.timeIntervalSince1970)])
    }

    /// Forgets replayed and discarded dead letters older than `before`.
    static func pruneDeadLetters(workspaceID: String, before: Date) -> StoreStatement {
        StoreStatement(
            "DELETE FROM dead_letters WHERE workspace_id = $1 AND state IN ('delivered', 'discarded') AND updated_at < $2",
            [.text(workspaceID), .real(before.timeIntervalSince1970)])
    }
}
