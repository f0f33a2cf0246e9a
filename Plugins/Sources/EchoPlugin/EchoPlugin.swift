import PluginSDK

/// Answers any request with its body as it came. Requests no permissions; used by benchmarks.
final class EchoPlugin: Plugin {
    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
        PluginResponse(status: 200, headers: request.headers["content-type"].map { ["content-type": $0] } ?? [:], body: request.body)
    }
}

@_cdecl("plugin_host_entry")
public func pluginHostEntry() -> UnsafeMutableRawPointer {
    PluginExport.entry(EchoPlugin())
}
