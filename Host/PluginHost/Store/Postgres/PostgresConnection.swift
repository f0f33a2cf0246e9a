import CLibPQ
import Foundation

/// A value bound to or read from PostgreSQL. Parameters are always bound, never spliced into SQL text:
/// text, numbers and booleans travel in text format, `bytea` in binary format so every byte (NUL
/// included) survives. Results are read in binary format.
package enum PostgresValue: Sendable, Hashable {
    case null
    case text(String)
    case bytea(Data)
    case int(Int64)
    case double(Double)
    case bool(Bool)

    package var string: String? { if case .text(let value) = self { value } else { nil } }
    package var int64: Int64? { if case .int(let value) = self { value } else { nil } }
    package var double: Double? {
        switch self {
        case .double(let value): value
        case .int(let value): Double(value)
        default: nil
        }
    }
    package var data: Data? {
        switch self {
        case .bytea(let value): value
        case .text(let value): Data(value.utf8)
        default: nil
        }
    }
}

typealias PostgresRow = [PostgresValue]

/// One SQL statement with its parameters (`$1`, `$2`, ...).
struct PostgresStatement: Sendable {
    var sql: String
    var parameters: [PostgresValue]

    init(_ sql: String, _ parameters: [PostgresValue] = []) {
        self.sql = sql
        self.parameters = parameters
    }
}

struct PostgresError: Error, CustomStringConvertible {
    /// The SQLSTATE the server reported, for example `23505` for a unique violation.
    var sqlState: String?
    var message: String
    /// The connection is gone (server down or restarted, network): the pool discards it.
    var connectionLost: Bool

    var description: String { sqlState.map { "PostgreSQL error \($0): \(message)" } ?? "PostgreSQL: \(message)" }

    static let uniqueViolation = "23505"
    static let foreignKeyViolation = "23503"
    static let queryCanceled = "57014"
}

/// One libpq connection with a cache of prepared statements. Every call blocks, so it is only ever used
/// from a thread of ``PostgresPool``'s own thread pool, by one caller at a time (a pool lease).
final class PostgresConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private var prepared: [String: String] = [:]
    private var nextStatement = 0
    /// Left in a state no later call can rely on (a pipeline abandoned midway): never reused.
    private var broken = false

    /// Connects with `url` (a `postgresql://` URL or `key=value` string) and sets the session's statement timeout.
    init(url: String, statementTimeout: Duration, connectTimeoutSeconds: Int = 5) throws {
        // Settings before `dbname` are defaults; what the URL says (expanded from `dbname`) overrides them.
        // Keepalives and a TCP user timeout bound how long a call can hang on a half-open connection.
        let keywords = ["connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                        "tcp_user_timeout", "dbname"]
        let values = [String(connectTimeoutSeconds), "plugin-host", "1", "10", "5", "3", "15000", url]
        let handle = withCStrings(keywords) { keywords in
            withCStrings(values) { values in PQconnectdbParams(keywords, values, 1) }
        }
        guard let handle else { throw PostgresError(message: "out of memory while connecting", connectionLost: true) }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(handle)
            // libpq may quote a malformed URL back; never let its password reach a log.
            throw PostgresError(message: redactingPassword(of: url, in: message), connectionLost: true)
        }
        self.handle = handle
        // Server notices (NOTICE, WARNING) would go to stderr; the host logs what matters itself.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        let milliseconds = statementTimeout.components.seconds * 1000 + statementTimeout.components.attoseconds / 1_000_000_000_000_000
        try execute("SET statement_timeout = \(max(1, milliseconds))")
    }

    deinit {
        PQfinish(handle)
    }

    /// Usable for the next lease: connected and outside any transaction.
    var isReusable: Bool {
        !broken && PQstatus(handle) == CONNECTION_OK && PQtransactionStatus(handle) == PQTRANS_IDLE && PQpipelineStatus(handle) == PQ_PIPELINE_OFF
    }

    /// Reads whatever the server sent while the connection sat idle; a server that restarted or closed
    /// the connection shows up here, before a statement is lost on it.
    ///
    /// Twice: a server that shut down sent a last error message and then closed the connection, and one
    /// read returns that message as data; only the next one meets the end of the stream. A connection
    /// checked only once passed here, and failed the call it then carried with 503.
    func checkAlive() -> Bool {
        PQconsumeInput(handle) == 1 && PQconsumeInput(handle) == 1 && PQstatus(handle) == CONNECTION_OK
    }

    /// The socket, for waiting on notifications.
    var socket: Int32 { PQsocket(handle) }

    /// Runs SQL text without parameters through the simple protocol (several statements allowed):
    /// for migrations and session settings only, never for values.
    func execute(_ sql: String) throws {
        guard let result = PQexec(handle, sql) else { throw lostError() }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default: throw error(from: result)
        }
    }

    /// One statement; its rows.
    @discardableResult
    func query(_ sql: String, _ parameters: [PostgresValue] = []) throws -> [PostgresRow] {
        try pipeline([PostgresStatement(sql, parameters)])[0]
    }

    /// Runs `statements` in order in one round trip (libpq pipeline mode) as one implicit transaction,
    /// and returns each one's rows. After the first failure the rest do not run, what ran is rolled
    /// back, and the error is thrown.
    func pipeline(_ statements: [PostgresStatement]) throws -> [[PostgresRow]] {
        try pipeline(batch: [statements])[0].get()
    }

    /// Runs several groups of statements in one round trip. Each group is its own implicit transaction
    /// (a pipeline sync point ends it): it commits as a whole or not at all, and a failing group does not
    /// affect the others. Throws only when the connection fails, which fails every group.
    func pipeline(batch groups: [[PostgresStatement]]) throws -> [Result<[[PostgresRow]], PostgresError>] {
        // A group that cannot be sent fails alone, before anything is sent.
        var outcomes: [Result<[[PostgresRow]], PostgresError>?] = groups.map { group in
            group.contains { $0.parameters.contains { if case .text(let text) = $0 { text.utf8.contains(0) } else { false } } }
                ? .failure(PostgresError(message: "a text value contains a NUL character, which PostgreSQL text cannot hold", connectionLost: false))
                : nil
        }
        guard PQenterPipelineMode(handle) == 1 else { throw lostError() }
        do {
            // New statements are prepared in a segment of their own, so one that fails cannot take a
            // group of another caller with it, and a name is cached only once the server has it.
            var preparing: [(sql: String, name: String)] = []
            for (index, group) in groups.enumerated() where outcomes[index] == nil {
                for statement in group where prepared[statement.sql] == nil && !preparing.contains(where: { $0.sql == statement.sql }) {
                    nextStatement += 1
                    let name = "ph\(nextStatement)"
                    guard PQsendPrepare(handle, name, statement.sql, 0, nil) == 1 else { throw lostError() }
                    preparing.append((statement.sql, name))
                }
            }
            if !preparing.isEmpty {
                guard PQpipelineSync(handle) == 1 else { throw lostError() }
            }
            var plans: [(index: Int, statements: Int)] = []
            var names: [String: String] = prepared
            for (sql, name) in preparing { names[sql] = name }
            for (index, group) in groups.enumerated() where outcomes[index] == nil {
                for statement in group { try send(prepared: names[statement.sql]!, parameters: statement.parameters) }
                guard PQpipelineSync(handle) == 1 else { throw lostError() }
                plans.append((index, group.count))
            }
            var failedToPrepare: [String: PostgresError] = [:]
            if !preparing.isEmpty {
                for (sql, name) in preparing {
                    guard let result = PQgetResult(handle) else { throw lostError() }
                    if PQresultStatus(result) == PGRES_COMMAND_OK {
                        prepared[sql] = name
                    } else if PQresultStatus(result) != PGRES_PIPELINE_ABORTED {
                        failedToPrepare[sql] = error(from: result)
                    }
                    PQclear(result)
                    while let extra = PQgetResult(handle) { PQclear(extra) }
                }
                try readSync()
            }
            for plan in plans {
                var results: [[PostgresRow]] = []
                var firstError: PostgresError?
                for _ in 0..<plan.statements {
                    guard let result = PQgetResult(handle) else { throw lostError() }
                    switch PQresultStatus(result) {
                    case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                        results.append(rows(of: result))
                    case PGRES_PIPELINE_ABORTED:
                        break
                    default:
                        if firstError == nil { firstError = error(from: result) }
                    }
                    PQclear(result)
                    // The NULL that ends this statement's results.
                    while let extra = PQgetResult(handle) { PQclear(extra) }
                    if PQstatus(handle) != CONNECTION_OK { throw lostError() }
                }
                try readSync()
                if let firstError {
                    // A statement the server no longer knows, or whose plan no longer fits the schema
                    // (another host migrated): prepare it again next time.
                    if firstError.sqlState == "26000" || firstError.sqlState == "0A000" {
                        for statement in groups[plan.index] { prepared[statement.sql] = nil }
                    }
                    outcomes[plan.index] = .failure(groups[plan.index].lazy.compactMap { failedToPrepare[$0.sql] }.first ?? firstError)
                } else {
                    outcomes[plan.index] = .success(results)
                }
            }
            guard PQexitPipelineMode(handle) == 1 else { throw lostError() }
            return outcomes.map { $0! }
        } catch {
            broken = true
            throw error
        }
    }

    private func readSync() throws {
        guard let sync = PQgetResult(handle) else { throw lostError() }
        let synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
        PQclear(sync)
        guard synced else { throw lostError() }
    }

    /// Runs `body` inside `BEGIN` / `COMMIT`, rolling back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            if PQstatus(handle) == CONNECTION_OK { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Notifications received so far (after `checkAlive` or a wait on ``socket``).
    func notifications() -> [(channel: String, payload: String)] {
        var received: [(String, String)] = []
        while let notify = PQnotifies(handle) {
            received.append((String(cString: notify.pointee.relname), String(cString: notify.pointee.extra)))
            PQfreemem(notify)
        }
        return received
    }

    // MARK: Wire details

    private func send(prepared name: String, parameters: [PostgresValue]) throws {
        var bytes: [UInt8] = []
        var spans: [(offset: Int, length: Int)?] = []
        var formats: [Int32] = []
        for parameter in parameters {
            switch parameter {
            case .null:
                spans.append(nil)
                formats.append(0)
            case .bytea(let data):
                spans.append((bytes.count, data.count))
                bytes.append(contentsOf: data)
                formats.append(1)
            case .text(let text):
                // `pipeline(batch:)` has refused text holding NUL before anything was sent.
                spans.append(appendText(text, to: &bytes))
                formats.append(0)
            case .int(let value):
                spans.append(appendText(String(value), to: &bytes))
                formats.append(0)
            case .double(let value):
                spans.append(appendText(value.isFinite ? "\(value)" : (value.isNaN ? "NaN" : (value > 0 ? "Infinity" : "-Infinity")), to: &bytes))
                formats.append(0)
            case .bool(let value):
                spans.append(appendText(value ? "t" : "f", to: &bytes))
                formats.append(0)
            }
        }
        bytes.append(0)
        let sent = bytes.withUnsafeBufferPointer { buffer -> Int32 in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let values: [UnsafePointer<CChar>?] = spans.map { span in span.map { base + $0.offset } }
            let lengths: [Int32] = spans.map { Int32($0?.length ?? 0) }
            return PQsendQueryPrepared(handle, name, Int32(parameters.count), values, lengths, formats, 1)
        }
        guard sent == 1 else { throw lostError() }
    }

    private func appendText(_ text: String, to bytes: inout [UInt8]) -> (offset: Int, length: Int) {
        let offset = bytes.count
        bytes.append(contentsOf: text.utf8)
        bytes.append(0)
        return (offset, bytes.count - offset - 1)
    }

    private func rows(of result: OpaquePointer) -> [PostgresRow] {
        let rowCount = PQntuples(result)
        let columnCount = PQnfields(result)
        let types = (0..<columnCount).map { PQftype(result, $0) }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: PostgresRow = []
            values.reserveCapacity(Int(columnCount))
            for column in 0..<columnCount {
                if PQgetisnull(result, row, column) == 1 {
                    values.append(.null)
                    continue
                }
                let raw = UnsafeRawBufferPointer(start: PQgetvalue(result, row, column), count: Int(PQgetlength(result, row, column)))
                values.append(Self.decode(raw, type: types[Int(column)]))
            }
            rows.append(values)
        }
        return rows
    }

    private static func decode(_ raw: UnsafeRawBufferPointer, type: Oid) -> PostgresValue {
        switch type {
        case 17: return .bytea(Data(raw))
        case 16: return .bool(raw.first.map { $0 != 0 } ?? false)
        case 20 where raw.count == 8: return .int(Int64(bigEndian: raw.loadUnaligned(as: Int64.self)))
        case 23 where raw.count == 4: return .int(Int64(Int32(bigEndian: raw.loadUnaligned(as: Int32.self))))
        case 21 where raw.count == 2: return .int(Int64(Int16(bigEndian: raw.loadUnaligned(as: Int16.self))))
        case 701 where raw.count == 8: return .double(Double(bitPattern: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self))))
        default: return .text(String(decoding: raw, as: UTF8.self))
        }
    }

    private func error(from result: OpaquePointer) -> PostgresError {
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        return PostgresError(sqlState: state, message: message, connectionLost: PQstatus(handle) != CONNECTION_OK)
    }

    private func lostError() -> PostgresError {
        let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
        return PostgresError(message: message.isEmpty ? "the connection failed" : message, connectionLost: true)
    }
}

/// Calls `body` with a NULL-terminated C array of the strings, valid for the call only.
private func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// `message` without the password of `url`, raw or percent-decoded, nor any `password=` setting.
func redactingPassword(of url: String, in message: String) -> String {
    var message = message.replacingOccurrences(of: #"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)"#, with: "password=***", options: .regularExpression)
    if let scheme = url.range(of: "://"), let at = url.range(of: "@", options: .backwards), scheme.upperBound <= at.lowerBound {
        let userinfo = url[scheme.upperBound..<at.lowerBound]
        if let colon = userinfo.firstIndex(of: ":") {
            let raw = String(userinfo[userinfo.index(after: colon)...])
            for form in [raw, lenientlyPercentDecoded(raw)] where !form.isEmpty {
                message = message.replacingOccurrences(of: form, with: "***")
            }
        }
    }
    return message
}

/// `text` with every valid `%XX` decoded and anything else kept, as libpq reads a URL's password.
private func lenientlyPercentDecoded(_ text: String) -> String {
    var bytes: [UInt8] = []
    var utf8 = Array(text.utf8)[...]
    while let byte = utf8.popFirst() {
        if byte == UInt8(ascii: "%"), utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
            bytes.append(value)
            utf8 = utf8.dropFirst(2)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A database URL with its password hidden, for logs and error messages.
func redactedDatabaseURL(_ url: String) -> String {
    if var components = URLComponents(string: url), components.scheme?.hasPrefix("postgres") == true {
        if components.password != nil { components.password = "***" }
        if let items = components.queryItems {
            components.queryItems = items.map { $0.name == "password" ? URLQueryItem(name: "password", value: "***") : $0 }
        }
        return components.string ?? "postgresql://***"
    }
    return url.replacingOccurrences(of: #"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)"#, with: "password=***", options: .regularExpression)
}
