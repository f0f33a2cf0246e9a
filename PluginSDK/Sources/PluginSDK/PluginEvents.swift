import Foundation

/// Publishes events in the context's workspace.
///
/// Events reach only plugins enabled in the same workspace that subscribe to a matching pattern and hold
/// an `events.subscribe` grant for it. Publishing needs an `events.publish:<pattern>` grant matching `type`.
public protocol PluginEvents: Sendable {
    /// Publishes an event of `type` (for example `notes.created`) with a JSON payload.
    func publish(type: String, payload: Data) async throws
}

extension PluginEvents {
    /// Publishes `payload` encoded as JSON.
    public func publish<Payload: Encodable>(type: String, json payload: Payload) async throws {
        try await publish(type: type, payload: PluginJSON.encoder().encode(payload))
    }
}

/// An event delivered to a subscribing plugin.
public struct PluginEvent: Sendable, Hashable, Codable {
    /// Unique per published event; the same on every retry of a delivery.
    public var id: String
    /// The event type, for example `notes.created`.
    public var type: String
    /// The workspace it was published in.
    public var workspaceID: String
    /// The plugin that published it.
    public var sourcePluginID: String
    /// When it was published.
    public var occurredAt: Date
    /// The JSON payload as published.
    public var payload: Data

    /// Creates an event.
    public init(id: String, type: String, workspaceID: String, sourcePluginID: String, occurredAt: Date, payload: Data) {
        self.id = id
        self.type = type
        self.workspaceID = workspaceID
        self.sourcePluginID = sourcePluginID
        self.occurredAt = occurredAt
        self.payload = payload
    }

    /// Decodes the payload as JSON.
    public func decodePayload<Payload: Decodable>(as type: Payload.Type) throws -> Payload {
        try PluginJSON.decoder().decode(Payload.self, from: payload)
    }
}
