import Synchronization

/// What other hosts sharing the database changed in the registry, waiting to be applied here. Changes
/// are kept as a set (the same record changed twice is read once), and a wake-up is signalled when
/// there are some. Past ``limit`` pending changes, or when changes may have been missed (the listening
/// connection was lost), the feed asks for the whole registry instead.
package final class RegistryChangeFeed: Sendable {
    package enum Pending: Sendable, Equatable {
        case changes(Set<RegistryChange>)
        case everything
    }

    private struct State {
        var changes: Set<RegistryChange> = []
        var everything = false
    }

    /// Yields when changes are pending; several changes may come with one wake-up.
    package let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let state = Mutex(State())
    let limit: Int
    /// This host's mark on the changes it notifies, which it need not read back.
    let origin: String

    init(limit: Int = 1_000) {
        (wakeups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.limit = limit
        var generator = SystemRandomNumberGenerator()
        self.origin = String(generator.next() as UInt64, radix: 36)
    }

    /// The payload that notifies `change` to the other hosts: `<origin> <change>`.
    func payload(_ change: RegistryChange) -> String {
        origin + " " + change.description
    }

    /// A notification's payload: what another host changed (this host's own are skipped), or, when it
    /// cannot be read, possibly anything.
    func received(_ payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, let change = RegistryChange(parts[1]) else { return addEverything() }
        if parts[0] != origin { add(change) }
    }

    func add(_ change: RegistryChange) {
        state.withLock { state in
            guard !state.everything else { return }
            state.changes.insert(change)
            if state.changes.count > limit {
                state.everything = true
                state.changes = []
            }
        }
        continuation.yield()
    }

    func addEverything() {
        state.withLock { state in
            state.everything = true
            state.changes = []
        }
        continuation.yield()
    }

    /// Takes what is pending; `nil` when nothing is.
    package func take() -> Pending? {
        state.withLock { state in
            defer { state = State() }
            if state.everything { return .everything }
            return state.changes.isEmpty ? nil : .changes(state.changes)
        }
    }

    func finish() {
        continuation.finish()
    }
}
