import Synchronization

/// Notices from other hosts sharing the database that they committed events, waiting to wake this
/// host's lanes: the workspaces named (a set), or every workspace after notices may have been missed (the
/// listening connection was lost). A wake-up is signalled when there are some.
package final class EventNoticeFeed: Sendable {
    package enum Pending: Sendable, Equatable {
        case workspaces(Set<String>)
        case everything
    }

    private struct State {
        var workspaces: Set<String> = []
        var everything = false
    }

    package let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let state = Mutex(State())
    /// This host's mark on the notices it sends, which it need not act on.
    let origin = String(UInt64.random(in: 0...UInt64.max), radix: 36)

    init() {
        (wakeups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The payload of a notice for `workspaceIDs`: `<origin> <id>,<id>,...` (ids hold no `,` or space).
    func payload(_ workspaceIDs: some Sequence<String>) -> String {
        origin + " " + workspaceIDs.joined(separator: ",")
    }

    /// A notice's payload: the workspaces another host committed events in (this host's own are
    /// skipped), or, when it cannot be read, possibly any.
    func received(_ payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return addEverything() }
        guard parts[0] != origin else { return }
        state.withLock { state in
            guard !state.everything else { return }
            state.workspaces.formUnion(parts[1].split(separator: ",").map(String.init))
        }
        continuation.yield()
    }

    func addEverything() {
        state.withLock { state in
            state.everything = true
            state.workspaces = []
        }
        continuation.yield()
    }

    /// Takes what is pending; `nil` when nothing is.
    package func take() -> Pending? {
        state.withLock { state in
            defer { state = State() }
            if state.everything { return .everything }
            return state.workspaces.isEmpty ? nil : .workspaces(state.workspaces)
        }
    }

    func finish() {
        continuation.finish()
    }
}
