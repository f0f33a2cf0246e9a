import Foundation
import NIOPosix

/// A SQLite database whose blocking calls all run on one dedicated thread, never on an event loop or
/// Swift's cooperative pool. One connection in WAL mode serialises every statement, which is what SQLite
/// does for writers anyway and keeps each call's cost to a thread hop.
final class SQLiteDatabase: @unchecked Sendable {
    // Touched only from `threadPool`'s single thread.
    private let connection: SQLiteConnection
    private let threadPool: NIOThreadPool

    init(path: String) async throws {
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        do {
            self.connection = try await threadPool.runIfActive { try SQLiteConnection(path: path) }
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
        self.threadPool = threadPool
    }

    /// Runs `body` with the connection on the database thread.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        let connection = self.connection
        return try await threadPool.runIfActive { try body(connection) }
    }

    func close() async {
        try? await threadPool.shutdownGracefully()
    }
}
