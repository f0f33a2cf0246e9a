import PluginSDK

/// Carries events from publishing plugins to subscribers. The in-process bus is one implementation;
/// a durable bus that commits events with the publisher's writes is another.
public protocol EventBus: Sendable {
    /// Accepts an event for asynchronous delivery.
    func publish(_ event: PluginEvent) async throws
}
