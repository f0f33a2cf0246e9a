import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import PluginHost
import ServiceLifecycle

/// Requests/s of `echo` through the whole host (auth, routing, dispatch, timeout guard, metrics) vs a
/// bare Hummingbird route that echoes the body, both in this process, both loaded by the same wrk run
/// settings, alternating so that neither gets a warmer machine.
struct HTTPBenchmark {
    let pluginsFolder: String
    let duration = 4
    let connections = 32
    let rounds = 9

    struct Result {
        var hostRequestsPerSecond: [Double]
        var bareRequestsPerSecond: [Double]
    }

    func run() async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try echoManifest(pluginsFolder).write(to: folder.appendingPathComponent("manifests/echo.json"), atomically: true, encoding: .utf8)

        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let token = "bench-admin-token"
        let ports = AsyncStream.makeStream(of: Int.self)
        let host = try await buildApplication(
            configuration: inProcess(HostConfiguration(dataDirectory: folder.appendingPathComponent("data").path, port: 0,
                                                       manifestsDirectory: folder.appendingPathComponent("manifests").path, adminToken: token)),
            logger: logger, onServerRunning: { ports.continuation.yield($0) }
        )
        let router = Router()
        router.post("echo") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: body))
        }
        let bare = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { ports.continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [host, bare], gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        defer { running.cancel() }

        var iterator = ports.stream.makeAsyncIterator()
        var bound: [Int] = []
        while bound.count < 2, let port = await iterator.next() { bound.append(port) }
        // Which port is which: the host answers /health, the bare app does not.
        var hostPort = bound[0]
        var barePort = bound[1]
        if try await httpCall("GET", "http://127.0.0.1:\(hostPort)/health", token: nil, body: nil).status != 200 { swap(&hostPort, &barePort) }

        let base = "http://127.0.0.1:\(hostPort)"
        _ = try await httpCall("POST", base + "/v1/tenants", token: token, body: #"{"id":"bench","name":"bench"}"#)
        _ = try await httpCall("POST", base + "/v1/tenants/bench/workspaces", token: token, body: #"{"id":"ws","name":"ws"}"#)
        let enabled = try await httpCall("PUT", base + "/v1/workspaces/ws/plugins/example.echo", token: token, body: #"{"grants":[]}"#).status
        guard enabled == 200 else { throw BenchError("could not enable echo (\(enabled))") }

        let script = folder.appendingPathComponent("post.lua").path
        try "wrk.method = \"POST\"\nwrk.body = string.rep(\"a\", 64)\nwrk.headers[\"Content-Type\"] = \"text/plain\"\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        let authorization = ["-H", "Authorization: Bearer \(token)"]
        func throughHost() async throws -> Double {
            try await runWrk(
                base + "/v1/workspaces/ws/plugins/example.echo/resources/echo", connections: connections, seconds: duration, script: script, arguments: authorization
            ).requestsPerSecond
        }
        func throughBare() async throws -> Double {
            try await runWrk("http://127.0.0.1:\(barePort)/echo", connections: connections, seconds: duration, script: script, arguments: authorization).requestsPerSecond
        }
        // A warm-up pair (connections, caches, the allocator) that is not counted, then the rounds.
        let (hostRates, bareRates) = try await alternatingRounds(rounds, warmUp: true, throughHost, throughBare)
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return Result(hostRequestsPerSecond: hostRates, bareRequestsPerSecond: bareRates)
    }
}

/// One HTTP call for setting a benchmark up: its status and body.
func httpCall(
    _ method: String, _ url: String, token: String?, body: String?, contentType: String = "application/json", headers: [(String, String)] = []
) async throws -> (status: Int, body: Data) {
    var request = HTTPClientRequest(url: url)
    request.method = .init(rawValue: method)
    if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body {
        request.headers.add(name: "Content-Type", value: contentType)
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    let answer = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), Data(buffer: answer))
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
