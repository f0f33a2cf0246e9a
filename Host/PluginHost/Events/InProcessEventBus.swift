import PluginSDK

/// An in-memory queue of events, consumed by ``EventDispatcher``. Events not yet delivered when the
/// process dies are lost; on graceful shutdown the queue is drained first.
public final class InProcessEventBus: EventBus {
    let stream: AsyncStream<PluginEvent>
    private let continuation: AsyncStream<PluginEvent>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: PluginEvent.self)
    }

    public func publish(_ event: PluginEvent) async throws {
        if case .terminated = continuation.yield(event) {
            throw PluginError.unavailable("the host is shutting down and accepts no more events")
        }
    }

    func finish() {
        continuation.finish()
    }
}
