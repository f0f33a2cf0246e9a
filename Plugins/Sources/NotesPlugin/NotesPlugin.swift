import Foundation
import PluginSDK

/// Notes kept per workspace: `POST notes` creates one and publishes `notes.created` with it (one write batch), `GET notes` lists them,
/// `GET notes/{id}` answers one.
final class NotesPlugin: Plugin {
    struct NewNote: Decodable {
        var text: String
    }

    struct Note: Codable {
        var id: String
        var text: String
        var createdBy: String
        var createdAt: Date
    }

    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
        switch (request.method, request.path) {
        case ("POST", "notes"):
            let input = try request.decodeJSON(NewNote.self)
            let maxLength = context.config["maxLength"]?.integerValue ?? 10_000
            guard !input.text.isEmpty, input.text.count <= maxLength else {
                throw PluginError.badRequest("text must have 1 to \(maxLength) characters")
            }
            // Keys sort by creation time, so listing returns notes in the order they were written.
            let id = String(format: "%013.0f-%@", Date().timeIntervalSince1970 * 1000, UUID().uuidString.prefix(8).lowercased())
            let note = Note(id: id, text: input.text, createdBy: context.caller.subject, createdAt: Date())
            // The note and its event commit together: a subscriber hears of every stored note, and of
            // no note that was not stored.
            var batch = WriteBatch()
            try batch.put("note/\(id)", json: note, ifVersion: 0)
            try batch.publish(type: "notes.created", json: note)
            try await context.storage.commit(batch)
            context.logger.info("note created", metadata: ["note.id": id])
            return try .json(note, status: 201)
        case ("GET", "notes"):
            let page = try await context.storage.list(
                prefix: "note/", limit: Int(request.queryValue("limit") ?? "") ?? 100, after: request.queryValue("after").map { "note/\($0)" }
            )
            let notes = try page.entries.map { try PluginJSON.decoder().decode(Note.self, from: $0.value) }
            return try .json(NotesPage(notes: notes, next: page.nextCursor.map { String($0.dropFirst("note/".count)) }))
        case ("GET", _) where request.parameters["id"] != nil:
            // The manifest's route `notes/{id}`: the host names it, and `parameters` reads the segment.
            let id = request.parameters["id"]!  // checked above
            guard let stored = try await context.storage.get("note/\(id)") else { throw PluginError.notFound("note \(id)") }
            return PluginResponse(status: 200, headers: ["content-type": "application/json"], body: stored.value)
        default:
            throw PluginError.notFound("\(request.method) \(request.path)")
        }
    }

    struct NotesPage: Encodable {
        var notes: [Note]
        var next: String?
    }
}

@_cdecl("plugin_host_entry")
public func pluginHostEntry() -> UnsafeMutableRawPointer {
    PluginExport.entry(NotesPlugin())
}
