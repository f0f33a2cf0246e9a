import Foundation
import PluginSDK

/// Misbehaves on request, so tests can show the host contains it:
/// `throw` throws an arbitrary error, `hang` ignores cancellation for 3 seconds, `status` answers
/// with an impossible status, `thread` answers the name of the thread it runs on, `fine` answers 200.
/// Its `enabled` hook refuses a config with `refuse: true`.
final class FaultyPlugin: Plugin {
    struct Secret: Error { var detail = "internal detail that must not reach the caller" }

    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
        switch request.path {
        case "throw":
            throw Secret()
        case "hang":
            // Cancellation cannot end this wait, and it holds no thread (a loop of `try? Task.sleep`
            // would spin once cancelled, and starve the other tests).
            await withCheckedContinuation { continuation in
                DispatchQueue.global().asyncAfter(deadline: .now() + 3) { continuation.resume() }
            }
            return PluginResponse(status: 200)
        case "status":
            return PluginResponse(status: 1234)
        case "thread":
            let name = try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            return try .json(["thread": name.trimmingCharacters(in: .whitespacesAndNewlines)])
        default:
            return try .json(["ok": true])
        }
    }

    func enabled(context: any PluginContext) async throws {
        if context.config["refuse"]?.boolValue == true { throw PluginError.badRequest("refusing to be enabled") }
    }

    func handle(event: PluginEvent, context: any PluginContext) async throws {
        throw Secret()
    }
}

@_cdecl("plugin_host_entry")
public func pluginHostEntry() -> UnsafeMutableRawPointer {
    PluginExport.entry(FaultyPlugin())
}
