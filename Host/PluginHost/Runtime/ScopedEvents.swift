import Foundation
import PluginSDK

/// Publishes into the context's workspace only, checked against the grants.
struct ScopedEvents: PluginEvents {
    let bus: any EventBus
    let workspaceID: String
    let pluginID: String
    let grants: PermissionSet

    /// The same events with fewer grants (an SDK token's, within its enablement's).
    func narrowed(to grants: PermissionSet) -> ScopedEvents {
        ScopedEvents(bus: bus, workspaceID: workspaceID, pluginID: pluginID, grants: grants)
    }

    func publish(type: String, payload: Data) async throws {
        _ = try await publishEvent(type: type, payload: payload)
    }

    /// Publishes and returns the new event's id.
    func publishEvent(type: String, payload: Data) async throws -> String {
        guard EventPattern.isValidType(type) else {
            throw PluginError.badRequest("\"\(type)\" is not an event type: dot-separated segments of [a-z0-9_-]")
        }
        guard !type.hasPrefix(HostEvents.prefix) else {
            throw PluginError.badRequest("\(HostEvents.prefix)* events are the host's own; a plugin cannot publish \(type)")
        }
        guard grants.allowsPublishing(type) else {
            throw PluginError.permissionDenied(.eventsPublish(EventPattern(type)!))  // a valid type, checked above
        }
        let event = PluginEvent(
            id: UUID().uuidString.lowercased(), type: type, workspaceID: workspaceID, sourcePluginID: pluginID,
            occurredAt: Date(), payload: payload
        )
        try await bus.publish(event)
        return event.id
    }
}
