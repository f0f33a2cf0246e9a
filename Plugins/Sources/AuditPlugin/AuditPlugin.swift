import Foundation
import PluginSDK

/// Keeps an audit trail of the events it subscribes to (`notes.*` in its manifest).
final class AuditPlugin: Plugin {
    struct Entry: Codable {
        var id: String
        var type: String
        var sourcePluginID: String
        var occurredAt: Date
        var payload: JSONValue
        /// When the audit plugin received it: `recordedAt - occurredAt` is the event's delivery lag.
        var recordedAt: Date?
    }

    func handle(event: PluginEvent, context: any PluginContext) async throws {
        try await handle(events: [event], context: context)
    }

    /// Every waiting event (up to the manifest's `delivery.batchSize`, 256, which a write batch can hold) in one
    /// commit, not one commit per event.
    func handle(events: [PluginEvent], context: any PluginContext) async throws {
        var batch = WriteBatch()
        let now = Date()
        for event in events {
            let payload = (try? PluginJSON.decoder().decode(JSONValue.self, from: event.payload)) ?? .null
            let entry = Entry(id: event.id, type: event.type, sourcePluginID: event.sourcePluginID, occurredAt: event.occurredAt, payload: payload, recordedAt: now)
            // Keyed by event id, so a redelivered event overwrites its own entry instead of adding a second one.
            let key = String(format: "entry/%013.0f-%@", event.occurredAt.timeIntervalSince1970 * 1000, event.id)
            try batch.put(key, json: entry)
        }
        _ = try await context.storage.commit(batch)
    }

    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
        guard request.method == "GET", request.path == "entries" else {
            throw PluginError.notFound("\(request.method) \(request.path)")
        }
        let page = try await context.storage.list(
            prefix: "entry/", limit: Int(request.queryValue("limit") ?? "") ?? 100, after: request.queryValue("after")
        )
        let entries = try page.entries.map { try PluginJSON.decoder().decode(Entry.self, from: $0.value) }
        return try .json(EntriesPage(entries: entries, next: page.nextCursor))
    }

    struct EntriesPage: Encodable {
        var entries: [Entry]
        var next: String?
    }
}

@_cdecl("plugin_host_entry")
public func pluginHostEntry() -> UnsafeMutableRawPointer {
    PluginExport.entry(AuditPlugin())
}
