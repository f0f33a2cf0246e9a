import Foundation

/// A value bound to a statement of either store. PostgreSQL binds `blob` as `bytea`, SQLite as a blob.
package enum StoreValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)

    init(_ text: String?) {
        self = text.map(StoreValue.text) ?? .null
    }
}

/// A statement both stores run: SQL with PostgreSQL's `$1`, `$2`, ... placeholders (SQLite takes them
/// as `?1`, `?2`, ...) and its values.
package struct StoreStatement: Sendable {
    var sql: String
    var values: [StoreValue]
    /// What the statement makes, to name it when it already exists (`tenant acme`).
    var subject: String?

    init(_ sql: String, _ values: [StoreValue] = [], subject: String? = nil) {
        self.sql = sql
        self.values = values
        self.subject = subject
    }

    /// The SQL with `?n` placeholders, as SQLite writes them.
    var sqliteSQL: String {
        guard sql.contains("$") else { return sql }
        return String(sql.map { $0 == "$" ? "?" : $0 })
    }
}

/// A column of a row either store returns, read by type.
package protocol StoreColumn: Sendable {
    var string: String? { get }
    var int64: Int64? { get }
    var double: Double? { get }
    /// Bytes: a blob's, or a text's UTF-8.
    var data: Data? { get }
}

extension SQLiteValue: StoreColumn {
    init(_ value: StoreValue) {
        switch value {
        case .null: self = .null
        case .integer(let value): self = .integer(value)
        case .real(let value): self = .real(value)
        case .text(let value): self = .text(value)
        case .blob(let value): self = .blob(value)
        }
    }
}

extension PostgresValue: StoreColumn {
    init(_ value: StoreValue) {
        switch value {
        case .null: self = .null
        case .integer(let value): self = .int(value)
        case .real(let value): self = .double(value)
        case .text(let value): self = .text(value)
        case .blob(let value): self = .bytea(value)
        }
    }
}

extension PostgresStatement {
    init(_ statement: StoreStatement) {
        self.init(statement.sql, statement.values.map(PostgresValue.init))
    }
}
