import Hummingbird

/// `/health` (the process answers), `/ready` (the registry is loaded and the store answers) and
/// `/metrics` (Prometheus text).
struct HealthController {
    let runtime: PluginRuntime
    let metrics: HostMetrics

    func addRoutes(to router: Router<HostRequestContext>) {
        router.get("health") { _, _ in try Response.json(API.Health(status: "ok")) }
        router.get("ready") { _, _ in
            do {
                guard runtime.isReady else { throw StoreError.unavailable("the registry is not loaded yet") }
                try await runtime.store.ping()
                return try Response.json(API.Health(status: "ready"))
            } catch {
                return try Response.json(API.Health(status: "unavailable"), status: .serviceUnavailable)
            }
        }
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render()))
            )
        }
    }
}
