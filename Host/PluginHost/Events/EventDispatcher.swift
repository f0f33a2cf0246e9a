import Logging
import PluginSDK
import ServiceLifecycle

/// Delivers queued events to the plugins that subscribe to them, retrying failed deliveries.
///
/// Each event's first attempts run together, in publishing order. A delivery that fails is retried on
/// a task of its own with exponential backoff, so one subscriber that is down (a remote restarting)
/// holds back neither later events nor other subscribers; retried deliveries may arrive out of order.
/// A delivery given up is logged as an error, counted in `plugin_host_event_deliveries_dropped_total`
/// and, for a remote, shown in its status.
public struct EventDispatcher: Service {
    let bus: InProcessEventBus
    let runtime: PluginRuntime
    let logger: Logger

    public func run() async throws {
        await withDiscardingTaskGroup { retries in
            await withGracefulShutdownHandler {
                for await event in bus.stream {
                    let deliveries = runtime.events.deliveries(of: event)
                    for delivery in deliveries where !delivery.policy.inQueue {
                        retries.addTask { if !(await attempt(event, delivery, number: 1)) { await retry(event, delivery) } }
                    }
                    let failed = await withTaskGroup(of: EventRouter.Delivery?.self) { group in
                        for delivery in deliveries where delivery.policy.inQueue {
                            group.addTask { await attempt(event, delivery, number: 1) ? nil : delivery }
                        }
                        var failed: [EventRouter.Delivery] = []
                        for await delivery in group { if let delivery { failed.append(delivery) } }
                        return failed
                    }
                    for delivery in failed {
                        retries.addTask { await retry(event, delivery) }
                    }
                }
            } onGracefulShutdown: {
                bus.finish()
            }
        }
    }

    private func retry(_ event: PluginEvent, _ delivery: EventRouter.Delivery) async {
        let policy = delivery.policy.retry
        var delay = policy.initialDelay
        for number in 2..<(policy.maxAttempts + 1) {
            // A retry waiting when the host shuts down gets one last attempt at once.
            let wait = delay
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            if await attempt(event, delivery, number: number) { return }
            if Task.isShuttingDownGracefully { break }
            delay = min(delay * 2, policy.maxDelay)
        }
        var logger = logger(for: event, delivery)
        let reason = Task.isShuttingDownGracefully ? "the host shut down before it succeeded" : "\(policy.maxAttempts) attempts failed"
        logger[metadataKey: "reason"] = "\(reason)"
        logger.error("event delivery given up")
        runtime.metrics.recordDroppedEvent(plugin: delivery.pluginID)
        delivery.runner.deliveryDropped("event \(event.id) (\(event.type)) was not delivered: \(reason)")
    }

    /// One attempt; whether it succeeded.
    private func attempt(_ event: PluginEvent, _ delivery: EventRouter.Delivery, number: Int) async -> Bool {
        do {
            try await delivery.deliver()
            return true
        } catch {
            var logger = logger(for: event, delivery)
            logger[metadataKey: "attempt"] = "\(number)"
            logger[metadataKey: "error"] = "\(String(reflecting: error))"
            runtime.metrics.recordPluginError(plugin: delivery.pluginID, kind: "event")
            if number < delivery.policy.retry.maxAttempts { logger.warning("event delivery failed; retrying") }
            return false
        }
    }

    private func logger(for event: PluginEvent, _ delivery: EventRouter.Delivery) -> Logger {
        var logger = logger
        logger[metadataKey: "plugin.id"] = "\(delivery.pluginID)"
        logger[metadataKey: "workspace.id"] = "\(event.workspaceID)"
        logger[metadataKey: "event.id"] = "\(event.id)"
        logger[metadataKey: "event.type"] = "\(event.type)"
        return logger
    }
}
