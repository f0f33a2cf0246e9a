import Foundation
import PluginSDK
import Synchronization

/// Misbehaves on request, so tests can show the host contains it:
/// `throw` throws an arbitrary error, `hang` ignores cancellation for 3 seconds, `status` answers
/// with an impossible status, `thread` answers the name of the thread it runs on, `slow` answers 200
/// after a second, `module` answers the Swift module it was built as, `fine` answers 200.
/// Its `enabled` hook refuses a config with `refuse: true`, and remembers a config `marker` file, to
/// which its `shutdown` hook writes `shut down`.
final class FaultyPlugin: Plugin {
    struct Secret: Error { var detail = "internal detail that must not reach the caller" }
    private let markers = Mutex<[String]>([])

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
        case "slow":
            try await Task.sleep(for: .seconds(1))
            return try .json(["slow": true])
        case "module":
            // FaultyPlugin, or FaultyPluginV2 for the same source built as version 2.0.0.
            return try .json(["module": String(#fileID.prefix { $0 != "/" })])
        case "thread":
            let name = try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            return try .json(["thread": name.trimmingCharacters(in: .whitespacesAndNewlines)])
        default:
            return try .json(["ok": true])
        }
    }

    func enabled(context: any PluginContext) async throws {
        if context.config["refuse"]?.boolValue == true { throw PluginError.badRequest("refusing to be enabled") }
        if case .string(let marker)? = context.config["marker"] { markers.withLock { $0.append(marker) } }
    }

    func shutdown() async {
        for marker in markers.withLock({ $0 }) { try? "shut down".write(toFile: marker, atomically: true, encoding: .utf8) }
    }

    func handle(event: PluginEvent, context: any PluginContext) async throws {
        throw Secret()
    }
}

@_cdecl("plugin_host_entry")
public func pluginHostEntry() -> UnsafeMutableRawPointer {
    PluginExport.entry(FaultyPlugin())
}
