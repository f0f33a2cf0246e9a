import Foundation

/// A host's name in the leases of event lanes (``EventDelivery``): the file `host-id` in its data folder,
/// made on first start. A host restarted on the same folder is the same host and takes its lanes back
/// at once, instead of waiting for its own leases to expire. Hosts sharing a database each have their
/// own data folder, and so their own name.
enum HostIdentity {
    static func load(folder: String) -> String {
        let path = URL(fileURLWithPath: folder).appendingPathComponent("host-id").path
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty, id.utf8.count <= 64 { return id }
        }
        let id = UUID().uuidString.lowercased()
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Written whole, then renamed into place: a host killed meanwhile leaves no half-written name.
        let temporary = path + ".\(id)"
        if (try? Data((id + "\n").utf8).write(to: URL(fileURLWithPath: temporary))) != nil {
            _ = rename(temporary, path)
            // Two hosts starting together on one folder: the last rename wins, and both use that name.
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let written = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if !written.isEmpty { return written }
            }
        }
        return id
    }
}
