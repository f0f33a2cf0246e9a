import Foundation
import PluginSDK

/// Publishes into the context's workspace only, checked against the grants. Each event is stored before
/// `publish` returns (``EventOutbox``).
struct ScopedEvents: PluginEvents {
    let outbox: EventOutbox
    let workspaceID: String
    let pluginID: String
    let grants: PermissionSet

    /// The same events with fewer grants (an SDK token's, within its enablement's).
    func narrowed(to grants: PermissionSet) -> ScopedEvents {
        ScopedEvents(outbox: outbox, workspaceID: workspaceID, pluginID: pluginID, grants: grants)
    }

    func publish(type: String, payload: Data) async throws {
        _ = try await publishEvent(type: type, payload: payload)
    }

    /// Publishes and returns the new event's id.
    func publishEvent(type: String, payload: Data) async throws -> String {
        let event = try Self.event(type: type, payload: payload, workspaceID: workspaceID, pluginID: pluginID, grants: grants)
        do {
            try await outbox.publish(event)
        } catch let error as StoreError where error.code == .unavailable {
            throw PluginError.unavailable("events cannot be stored now; retry shortly")
        }
        return event.id
    }

    /// A new event of `type` from `pluginID`, if `grants` allow publishing it.
    static func event(type: String, payload: Data, workspaceID: String, pluginID: String, grants: PermissionSet) throws -> PluginEvent {
        guard EventPattern.isValidType(type) else {
            throw PluginError.badRequest("\"\(type)\" is not an event type: dot-separated segments of [a-z0-9_-]")
        }
        guard !type.hasPrefix(HostEvents.prefix) else {
            throw PluginError.badRequest("\(HostEvents.prefix)* events are the host's own; a plugin cannot publish \(type)")
        }
        guard grants.allowsPublishing(type) else {
            throw PluginError.permissionDenied(.eventsPublish(EventPattern(type)!))  // a valid type, checked above
        }
        return PluginEvent(
            id: UUID().uuidString.lowercased(), type: type, workspaceID: workspaceID, sourcePluginID: pluginID, occurredAt: Date(), payload: payload)
    }
}
