import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PluginHost
import ServiceLifecycle
import Synchronization

/// The remote echo plugin (`libEchoPlugin.so` behind the remote protocol server that `serve-plugin`
/// runs) called directly with signed calls, vs the same plugin called through the host, which routes,
/// checks the token, signs and forwards over its pooled client. One wrk, the same Lua script and
/// settings for all; every direct request is signed in advance with its own call id (the remote
/// refuses replays), so the client does no signing while it measures.
///
/// A third side sends the same signed requests through a bare Hummingbird route that forwards them
/// with AsyncHTTPClient, as any proxy on these two libraries would: the floor under the host's figures
/// on this machine, with none of the host's own work (auth, routing, grants, signing, the SDK token).
struct RemoteBenchmark {
    let pluginsFolder: String
    let connections = 32
    let seconds = 4
    let latencySeconds = 3
    let rounds = 5
    static let body = String(repeating: "a", count: 64)

    struct Result {
        var host: [WrkResult]
        var direct: [WrkResult]
        /// The same signed requests as direct, through a bare Hummingbird route that forwards them with
        /// AsyncHTTPClient: what any proxy built on the two costs here, with none of the host's work.
        var proxy: [WrkResult]
        var hostLatency: WrkResult
        var directLatency: WrkResult
        var proxyLatency: WrkResult
    }

    func run() async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-remote-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var logger = Logger(label: "bench")
        logger.logLevel = .error

        let token = "bench-admin-token"
        let secretFile = folder + "/install.secret"
        let hostPorts = AsyncStream.makeStream(of: Int.self)
        let remotePorts = AsyncStream.makeStream(of: Int.self)
        let host = try await buildApplication(
            configuration: HostConfiguration(dataDirectory: folder + "/data", port: 0, adminToken: token), logger: logger,
            onServerRunning: { hostPorts.continuation.yield($0) }
        )
        let remote = try RemotePluginServer.build(
            libraryPath: pluginsFolder + "/libEchoPlugin.so", hostname: "127.0.0.1", port: 0, installSecret: .file(secretFile), logger: logger,
            onServerRunning: { remotePorts.continuation.yield($0) }
        )
        let remoteBase = Mutex("")
        let proxyPorts = AsyncStream.makeStream(of: Int.self)
        let proxy = BareProxy(remoteURL: { remoteBase.withLock { $0 } }, logger: logger, onServerRunning: { proxyPorts.continuation.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [host, remote, proxy], gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        var hostIterator = hostPorts.stream.makeAsyncIterator()
        var remoteIterator = remotePorts.stream.makeAsyncIterator()
        var proxyIterator = proxyPorts.stream.makeAsyncIterator()
        guard let hostPort = await hostIterator.next(), let remotePort = await remoteIterator.next(), let proxyPort = await proxyIterator.next() else {
            throw BenchError("the servers did not start")
        }
        let base = "http://127.0.0.1:\(hostPort)"
        let remoteURL = "http://127.0.0.1:\(remotePort)"
        remoteBase.withLock { $0 = remoteURL }
        let proxyURL = "http://127.0.0.1:\(proxyPort)"

        // Through the host: install, hand the remote its install secret, enable.
        let manifest = "id: example.echo\nname: Echo\nversion: 1.0.0\nsdk: ^1.0.0\nruntime: {kind: remote, url: \"\(remoteURL)\", timeout: 5s}\n"
        let installed = try await httpCall("POST", base + "/v1/plugins", token: token, body: manifest, contentType: "application/yaml")
        guard installed.status == 201, let secret = (try JSONSerialization.jsonObject(with: installed.body) as? [String: Any])?["installSecret"] as? String else {
            throw BenchError("could not install the remote echo plugin: \(String(decoding: installed.body, as: UTF8.self))")
        }
        try secret.write(toFile: secretFile, atomically: true, encoding: .utf8)
        _ = try await httpCall("POST", base + "/v1/tenants", token: token, body: #"{"id":"bench","name":"bench"}"#)
        _ = try await httpCall("POST", base + "/v1/tenants/bench/workspaces", token: token, body: #"{"id":"ws","name":"ws"}"#)
        let enabled = try await httpCall("PUT", base + "/v1/workspaces/ws/plugins/example.echo", token: token, body: #"{"grants":[]}"#)
        guard enabled.status == 200 else { throw BenchError("could not enable the remote echo plugin (\(enabled.status))") }

        // Directly: the bench enables a workspace of its own on the remote, as the host would.
        let enablement = RemoteEnvelope.newSecret()
        let enabledBody = #"{"enablementSecret":"\#(enablement)","resumed":false}"#
        let enabledHeaders = try RemoteEnvelope.sign(
            secret: secret, context: Self.context(.enabled), method: "POST", target: RemoteEnvelope.CallKind.enabled.path, body: Data(enabledBody.utf8),
            expires: Int64(Date().timeIntervalSince1970) + 60
        )
        let direct = try await httpCall("POST", remoteURL + RemoteEnvelope.CallKind.enabled.path, token: nil, body: enabledBody, headers: enabledHeaders.fields).status
        guard direct == 200 else { throw BenchError("the remote refused the bench's enabled call (\(direct))") }

        let script = folder + "/requests.lua"
        try Self.lua.write(toFile: script, atomically: true, encoding: .utf8)
        let hostRequests = folder + "/host.requests"
        try Self.raw(target: "/v1/workspaces/ws/plugins/example.echo/resources/echo", port: hostPort, headers: [("Authorization", "Bearer \(token)")])
            .write(toFile: hostRequests, atomically: true, encoding: .utf8)
        func directRequests(_ count: Int) throws -> String {
            let path = folder + "/direct.requests"
            let expires = Int64(Date().timeIntervalSince1970) + 540
            var lines: [String] = []
            lines.reserveCapacity(count)
            for _ in 0..<count {
                let headers = try RemoteEnvelope.sign(
                    secret: enablement, context: Self.context(.request), method: "POST", target: "/resources/echo", body: Data(Self.body.utf8), expires: expires
                )
                lines.append(Self.raw(target: "/resources/echo", port: remotePort, headers: headers.fields))
            }
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        // A short direct run to size the batches of signed requests: each request is used once, so the
        // probe gets more than a second at any rate seen here (about 27,000 req/s at most).
        let probe = try await runWrk(remoteURL + "/resources/echo", connections: connections, seconds: 1, script: script, scriptArguments: [try directRequests(100_000)])
        let batch = Int(probe.requestsPerSecond * Double(seconds) * 1.6) + 10_000
        func throughHost() async throws -> WrkResult {
            try await runWrk(base + "/", connections: connections, seconds: seconds, script: script, scriptArguments: [hostRequests])
        }
        func directly() async throws -> WrkResult {
            try await runWrk(remoteURL + "/", connections: connections, seconds: seconds, script: script, scriptArguments: [try directRequests(batch)])
        }
        func throughProxy() async throws -> WrkResult {
            try await runWrk(proxyURL + "/", connections: connections, seconds: seconds, script: script, scriptArguments: [try directRequests(batch)])
        }
        // A warm-up of each, not counted; then each round runs all three, the order rotating.
        let measured = try await rotatingRounds(rounds, warmUp: true, [throughHost, directly, throughProxy])
        let (viaHost, directs, proxied) = (measured[0], measured[1], measured[2])
        // Latency without queueing: one connection, one request at a time. That is at most 1/p50 requests
        // a second; 10,000 a second (a p50 of 100 µs) is more than one connection has reached here.
        let hostLatency = try await runWrk(base + "/", connections: 1, seconds: latencySeconds, script: script, scriptArguments: [hostRequests])
        let directLatency = try await runWrk(
            remoteURL + "/", connections: 1, seconds: latencySeconds, script: script, scriptArguments: [try directRequests(latencySeconds * 10_000 + 10_000)]
        )
        let proxyLatency = try await runWrk(
            proxyURL + "/", connections: 1, seconds: latencySeconds, script: script, scriptArguments: [try directRequests(latencySeconds * 10_000 + 10_000)]
        )
        let result = Result(host: viaHost, direct: directs, proxy: proxied, hostLatency: hostLatency, directLatency: directLatency, proxyLatency: proxyLatency)

        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return result
    }

    /// A bare Hummingbird route passing each request on to the remote as it came (method, target,
    /// headers, body) and its answer back, over an HTTP client set up as the host's for remotes (pooled
    /// connections, no redirects, no tracer): no authentication, routing, grants or signing. The client
    /// is shut down when the server stops.
    struct BareProxy: Service {
        let remoteURL: @Sendable () -> String
        let logger: Logger
        let onServerRunning: @Sendable (Int) -> Void

        func run() async throws {
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
            configuration.decompression = .disabled
            configuration.tracing.tracer = nil
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            let remoteURL = self.remoteURL
            let router = Router()
            router.post("**") { request, _ -> Response in
                var outgoing = HTTPClientRequest(url: remoteURL() + request.uri.description)
                outgoing.method = .POST
                for field in request.headers where field.name != .contentLength && field.name != .connection {
                    outgoing.headers.add(name: field.name.rawName, value: field.value)
                }
                outgoing.body = .bytes(try await request.body.collect(upTo: 1 << 20))
                let response = try await client.execute(outgoing, deadline: .now() + .seconds(5))
                let body = try await response.body.collect(upTo: 1 << 20)
                var headers = HTTPFields()
                for header in response.headers where header.name.lowercased() != "content-length" {
                    if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
                }
                return Response(status: .init(code: Int(response.status.code)), headers: headers, body: ResponseBody(byteBuffer: body))
            }
            let onServerRunning = self.onServerRunning
            let application = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                          onServerRunning: { onServerRunning($0.localAddress?.port ?? 0) }, logger: logger)
            let failure: (any Error)?
            do {
                try await application.run()
                failure = nil
            } catch {
                failure = error
            }
            try await client.shutdown()
            if let failure { throw failure }
        }
    }

    static func context(_ kind: RemoteEnvelope.CallKind) -> RemoteEnvelope.Context {
        RemoteEnvelope.Context(
            call: kind, tenant: "bench", workspace: "direct", plugin: "example.echo", requestId: nil, caller: .init(subject: "bench", role: "member"),
            grants: [], config: [:], sdk: .init(url: "http://127.0.0.1:9", token: "unused", expires: Int64(Date().timeIntervalSince1970) + 600)
        )
    }

    /// A whole HTTP/1.1 request on one line, `|` standing for CRLF (the script turns it back).
    static func raw(target: String, port: Int, headers: [(String, String)]) -> String {
        var lines = ["POST \(target) HTTP/1.1", "Host: 127.0.0.1:\(port)", "Content-Type: text/plain", "Content-Length: \(body.utf8.count)"]
        lines += headers.map { "\($0.0): \($0.1)" }
        return lines.joined(separator: "|") + "||" + body
    }

    /// Reads the requests file named after `--` and sends its requests in turn, each once per lap.
    static let lua = """
        local requests = {}
        local count = 0
        local next = 0
        function init(args)
          for line in io.lines(args[1]) do
            count = count + 1
            requests[count] = (line:gsub("|", "\\r\\n"))
          end
        end
        function request()
          next = next + 1
          if next > count then next = 1 end
          return requests[next]
        end
        """
}
