import Logging
import PluginSDK
import ServiceLifecycle

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

/// Delivers queued events to the plugins that subscribe to them, retrying failed deliveries.
public struct EventDispatcher: Service {
    let bus: InProcessEventBus
    let runtime: PluginRuntime
    let logger: Logger

    public func run() async throws {
        await withGracefulShutdownHandler {
            // Deliveries of one event run concurrently; events are taken in publishing order.
            for await event in bus.stream {
                await withTaskGroup(of: Void.self) { group in
                    for delivery in runtime.deliveries(of: event) {
                        group.addTask { await deliver(event, delivery) }
                    }
                }
            }
        } onGracefulShutdown: {
            bus.finish()
        }
    }

    private func deliver(_ event: PluginEvent, _ delivery: PluginRuntime.Delivery) async {
        let policy = runtime.configuration.eventRetry
        var delay = policy.initialDelay
        for attempt in 1...policy.maxAttempts {
            do {
                try await delivery.deliver()
                return
            } catch {
                var logger = logger
                logger[metadataKey: "plugin.id"] = "\(delivery.pluginID)"
                logger[metadataKey: "workspace.id"] = "\(event.workspaceID)"
                logger[metadataKey: "event.id"] = "\(event.id)"
                logger[metadataKey: "event.type"] = "\(event.type)"
                logger[metadataKey: "attempt"] = "\(attempt)"
                logger[metadataKey: "error"] = "\(String(reflecting: error))"
                runtime.metrics.recordPluginError(plugin: delivery.pluginID, kind: "event")
                if attempt == policy.maxAttempts {
                    logger.error("event delivery failed; giving up")
                    return
                }
                logger.warning("event delivery failed; retrying")
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
    }
}
