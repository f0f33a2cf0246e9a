import Foundation
import PluginSDK

/// Misbehaves on request, so tests can show the host contains it:
/// `throw` throws an arbitrary error, `hang` ignores cancellation for a few seconds, `status` answers
/// with an impossible status, `fine` answers 200. Its `enabled` hook refuses a config with `refuse: true`.
final class FaultyPlugin: Plugin {
    struct Secret: Error { var detail = "internal detail that must not reach the caller" }

    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
        switch request.path {
        case "throw":
            throw Secret()
        case "hang":
            let until = ContinuousClock.now + .seconds(3)
            while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(50)) }
            return PluginResponse(status: 200)
        case "status":
            return PluginResponse(status: 1234)
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
