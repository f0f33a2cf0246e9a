import Foundation
import PluginSDK

/// What an admin does with a workspace's dead letters: event deliveries given up after their attempts
/// (docs/events.md, Dead letters).
extension PluginRuntime {
    /// The workspace's dead letters, oldest first: by default those waiting (`dead`) or being replayed.
    func deadLetters(workspaceID: String, pluginID: String?, states: [DeadLetter.State], limit: Int) async throws -> [DeadLetter] {
        guard (1...1000).contains(limit) else { throw HostError.invalidInput("limit must be between 1 and 1000, got \(limit)") }
        return try await storeCall { try await store.deadLetters(workspaceID: workspaceID, pluginID: pluginID, states: states, limit: limit) }
    }

    /// Asks for one dead letter (`id`) or every waiting one of the workspace to be delivered again, by
    /// its subscriber's lane; returns the ids. A replay that fails again makes it a dead letter again.
    func replayDeadLetters(workspaceID: String, id: String?) async throws -> [String] {
        let ids = try await storeCall {
            try await store.transitionDeadLetters(workspaceID: workspaceID, id: id, from: [.dead], to: .replay, now: Date())
        }
        if let id, ids.isEmpty { throw try await missing(workspaceID: workspaceID, id: id, for: "replayed") }
        outbox.wakeups.requestReplay(workspaceID: workspaceID)
        return ids
    }

    /// Gives up on a dead letter for good; it is pruned with the workspace's old events.
    func discardDeadLetter(workspaceID: String, id: String) async throws {
        let ids = try await storeCall {
            try await store.transitionDeadLetters(workspaceID: workspaceID, id: id, from: [.dead], to: .discarded, now: Date())
        }
        if ids.isEmpty { throw try await missing(workspaceID: workspaceID, id: id, for: "discarded") }
    }

    /// Why `id` could not be moved: there is none, or it is no longer waiting.
    private func missing(workspaceID: String, id: String, for action: String) async throws -> HostError {
        let all = try await storeCall { try await store.deadLetters(workspaceID: workspaceID, pluginID: nil, states: DeadLetter.State.allCases, limit: 1000) }
        guard let letter = all.first(where: { $0.id == id }) else { return .deadLetterNotFound(id: id, workspace: workspaceID) }
        return .deadLetterNotWaiting(id: id, state: letter.state.rawValue, action: action)
    }

    private func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError where error.code == .unavailable {
            throw HostError.storeUnavailable
        }
    }
}
