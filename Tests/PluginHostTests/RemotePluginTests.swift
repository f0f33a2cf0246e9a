import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
@testable import PluginHost
import Testing

/// Remote plugins: the envelope as the remote side checks it, SDK tokens as the host checks them, and
/// how the host copes with remotes that are down, slow or broken. Real processes on loopback.
@Suite("Remote plugins")
struct RemotePluginTests {
    enum RemoteSide: String, CaseIterable, CustomTestStringConvertible {
        case servePlugin = "serve-plugin"
        case python
        var testDescription: String { rawValue }
    }

    /// A signed call sent straight to a remote, as the host would send it, with hooks to spoil it.
    struct Caller {
        let url: String

        func context(_ kind: RemoteEnvelope.CallKind, workspace: String = "ws1", subject: String = "host") -> RemoteEnvelope.Context {
            RemoteEnvelope.Context(
                call: kind, tenant: "acme", workspace: workspace, plugin: "example.notes", requestId: nil,
                caller: .init(subject: subject, role: "platform-admin"), grants: [], config: [:],
                sdk: .init(url: "http://127.0.0.1:9", token: "not-used", expires: Int64(Date().timeIntervalSince1970) + 60)
            )
        }

        func eventBody(workspace: String = "ws1") -> Data {
            Data(#"{"id":"e1","type":"notes.created","workspaceId":"\#(workspace)","sourcePluginId":"example.notes","occurredAt":"2026-01-01T00:00:00Z","payload":"e30="}"#.utf8)
        }

        /// Sends `body` to `target` with headers signed over `signedBody` (default: the same body).
        func send(
            _ kind: RemoteEnvelope.CallKind, secret: String, body: Data, signedBody: Data? = nil, context: RemoteEnvelope.Context? = nil,
            expires: Int64 = Int64(Date().timeIntervalSince1970) + 60, headers given: [(String, String)]? = nil,
            spoil: (inout [(String, String)]) -> Void = { _ in }
        ) async throws -> (status: Int, refusal: String?, headers: [(String, String)]) {
            var fields = try given ?? RemoteEnvelope.sign(
                secret: secret, context: context ?? self.context(kind), method: "POST", target: kind.path, body: signedBody ?? body, expires: expires
            ).fields
            spoil(&fields)
            var request = HTTPClientRequest(url: url + kind.path)
            request.method = .POST
            for (name, value) in fields { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), response.headers.first(name: RemoteEnvelope.errorHeader), fields)
        }
    }

    @Test("the remote side refuses unsigned, tampered, wrongly signed, expired, replayed and unknown-workspace calls", arguments: RemoteSide.allCases)
    func remoteRefusesBadCalls(side: RemoteSide) async throws {
        let folder = try TemporaryFolder()
        let remote = switch side {
        case .servePlugin: try await RemotePluginProcess.servePlugin(library: try Fixtures.library("NotesPlugin"), folder: folder.path)
        case .python: try await RemotePluginProcess.python(folder: folder.path)
        }
        try await stoppingAfterwards({ remote }) {
            let install = RemoteEnvelope.newSecret(), enablement = RemoteEnvelope.newSecret()
            try install.write(toFile: remote.secretFile, atomically: true, encoding: .utf8)
            let caller = Caller(url: remote.url)
            let enabledBody = Data(#"{"enablementSecret":"\#(enablement)","resumed":false}"#.utf8)

            // Enabled needs the install secret; the enablement secret does not do.
            #expect(try await caller.send(.enabled, secret: enablement, body: enabledBody).refusal == "BAD_SIGNATURE")
            #expect(try await caller.send(.enabled, secret: install, body: enabledBody).status == 200)

            let event = caller.eventBody()
            let accepted = try await caller.send(.event, secret: enablement, body: event)
            #expect(accepted.status == 200)
            // The very same call again: a replay.
            let replayed = try await caller.send(.event, secret: enablement, body: event, headers: accepted.headers)
            #expect(replayed.status == 401)
            #expect(replayed.refusal == "REPLAYED")

            #expect(try await caller.send(.event, secret: enablement, body: event, spoil: { $0.removeAll() }).refusal == "MISSING_SIGNATURE")
            #expect(try await caller.send(.event, secret: enablement, body: caller.eventBody(workspace: "ws1 "), signedBody: event).refusal == "CONTENT_MISMATCH")
            #expect(try await caller.send(.event, secret: RemoteEnvelope.newSecret(), body: event).refusal == "BAD_SIGNATURE")
            #expect(try await caller.send(.event, secret: enablement, body: event, expires: Int64(Date().timeIntervalSince1970) - 5).refusal == "EXPIRED")
            // The context swapped for one naming another caller, the signature kept.
            let forged = try RemoteEnvelope.encode(caller.context(.event, subject: "mallory"))
            let tampered = try await caller.send(.event, secret: enablement, body: event) { fields in
                fields = fields.map { $0.0 == RemoteEnvelope.contextHeader ? ($0.0, forged) : $0 }
            }
            #expect(tampered.refusal == "BAD_SIGNATURE")
            // A workspace that never enabled the plugin has no secret on the remote.
            let unknown = try await caller.send(.event, secret: enablement, body: caller.eventBody(workspace: "ws9"), context: caller.context(.event, workspace: "ws9"))
            #expect(unknown.status == 401)
            #expect(unknown.refusal == "UNKNOWN_ENABLEMENT")

            // The cases docs/remote-protocol.md settles: a header present but malformed gets its check's code,
            // an unknown context version is BAD_CONTEXT, and a refused call's id is not remembered.
            let malformedExpiry = try await caller.send(.event, secret: enablement, body: event) { fields in
                fields = fields.map { $0.0 == RemoteEnvelope.expiresHeader ? ($0.0, "soon") : $0 }
            }
            #expect(malformedExpiry.refusal == "EXPIRED")
            var future = caller.context(.event)
            future.v = 2
            #expect(try await caller.send(.event, secret: enablement, body: event, context: future).refusal == "BAD_CONTEXT")
            let genuine = try RemoteEnvelope.sign(
                secret: enablement, context: caller.context(.event), method: "POST", target: RemoteEnvelope.CallKind.event.path, body: event,
                expires: Int64(Date().timeIntervalSince1970) + 60
            ).fields
            let spoiled = genuine.map { $0.0 == RemoteEnvelope.signatureHeader ? ($0.0, "v1=" + String(repeating: "0", count: 64)) : $0 }
            #expect(try await caller.send(.event, secret: enablement, body: event, headers: spoiled).refusal == "BAD_SIGNATURE")
            #expect(try await caller.send(.event, secret: enablement, body: event, headers: genuine).status == 200, "the refused call burnt the id")
        }
    }

    @Test("a call whose expiry is this very second is valid; one a second earlier is not")
    func expiryBoundary() throws {
        let secret = RemoteEnvelope.newSecret(), now: Int64 = 1_800_000_000
        let context = RemoteEnvelope.Context(
            call: .event, tenant: "acme", workspace: "ws1", plugin: "example.notes", requestId: nil, caller: .init(subject: "host", role: "platform-admin"),
            grants: [], config: [:], sdk: .init(url: "http://127.0.0.1:9", token: "t", expires: now + 60))
        func verify(expires: Int64) throws {
            let fields = Dictionary(uniqueKeysWithValues: try RemoteEnvelope.sign(
                secret: secret, context: context, method: "POST", target: "/plugin-host/v1/event", body: Data(), expires: expires).fields)
            _ = try RemoteEnvelope.verify(
                method: "POST", target: "/plugin-host/v1/event", headers: { fields[$0] }, body: Data(), expectedPlugin: "example.notes", expectedCall: .event,
                now: now, secretFor: { _, _ in secret }, remember: { _, _ in true })
        }
        try verify(expires: now)
        #expect(throws: RemoteEnvelope.Refusal.self) { try verify(expires: now - 1) }
    }

    @Test("a remote receives the caller's query byte for byte, in the caller's order, and the signature covers exactly that")
    func queryAsSent() async throws {
        let fake = try FakeRemote()
        defer { fake.stop() }
        // The default connect timeout, not fastRemotes' 300 ms: each call here is a new connection to the
        // fake, and a loaded machine once took longer than that to accept one.
        try await withHost { host in
            try await host.install("""
                id: test.capture
                name: Capture
                version: 1.0.0
                sdk: ^1.0.0
                runtime: {kind: remote, url: "http://127.0.0.1:\(fake.port)", timeout: 4s}
                """)
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("test.capture", in: "ws1", grants: [])
            let enabled = try #require(fake.received.first { $0.target == "/plugin-host/v1/enabled" })
            let enablementSecret = try #require((try JSONSerialization.jsonObject(with: enabled.body) as? [String: Any])?["enablementSecret"] as? String)
            // A form-encoded space, a name without a value, a semicolon, a repeated name: passed on byte for byte.
            for query in ["b=2&a=1", "b=a+b", "flag", "a=1;b=2", "x=%2B&x=2&empty="] {
                let reply = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.capture/resources/q?" + query)
                #expect(reply.status == 200, "\(query): \(reply.status) \(reply.text)")
                let sent = try #require(fake.received.last { $0.target.hasPrefix("/resources/") })
                #expect(sent.target == "/resources/q?" + query)
                _ = try RemoteEnvelope.verify(
                    method: sent.method, target: sent.target, headers: { sent.headers[$0] }, body: sent.body, expectedPlugin: "test.capture",
                    expectedCall: .request, secretFor: { _, _ in enablementSecret }, remember: { _, _ in true })
            }
        }
    }

    @Test("SDK tokens reach one plugin in one workspace with its grants, and expire")
    func sdkTokens() async throws {
        let fake = try FakeRemote()
        defer { fake.stop() }
        try await withHost(configure: { fastRemotes(&$0); $0.remote.tokenGrace = .zero }) { host in
            let manifest = """
                id: test.capture
                name: Capture
                version: 1.0.0
                sdk: ^1.0.0
                runtime: {kind: remote, url: "http://127.0.0.1:\(fake.port)", timeout: 4s}
                permissions: [storage.read, storage.write]
                """
            let installed = try await host.install(manifest)
            let installSecret = try #require(installed.json["installSecret"] as? String)
            try await host.tenant("acme", workspaces: ["ws1", "ws2"])
            try await host.enable("test.capture", in: "ws1", grants: ["storage.read"])
            try await host.enable("test.capture", in: "ws2", grants: ["storage.read", "storage.write"])

            // The enabled call is signed with the install secret and carries the workspace's secret.
            let enabled = try #require(fake.received.first { $0.target == "/plugin-host/v1/enabled" })
            // The host's own calls say what they carry.
            #expect(enabled.headers["content-type"] == "application/json")
            let verified = try RemoteEnvelope.verify(
                method: enabled.method, target: enabled.target, headers: { enabled.headers[$0] }, body: enabled.body, expectedPlugin: "test.capture",
                expectedCall: .enabled, secretFor: { _, _ in installSecret }, remember: { _, _ in true }
            )
            #expect(verified.workspace == "ws1")
            let enablementSecret = try #require((try JSONSerialization.jsonObject(with: enabled.body) as? [String: Any])?["enablementSecret"] as? String)

            func token(_ workspace: String) async throws -> String {
                #expect(try await host.admin(.GET, "/v1/workspaces/\(workspace)/plugins/test.capture/resources/x?b=2&a=1").status == 200)
                let call = try #require(fake.received.last { $0.target.hasPrefix("/resources/") })
                // The query as the caller sent it, not rebuilt.
                #expect(call.target == "/resources/x?b=2&a=1")
                if workspace == "ws1" {
                    let context = try RemoteEnvelope.verify(
                        method: call.method, target: call.target, headers: { call.headers[$0] }, body: call.body, expectedPlugin: "test.capture",
                        expectedCall: .request, secretFor: { _, _ in enablementSecret }, remember: { _, _ in true }
                    )
                    #expect(context.grants == ["storage.read"])
                    #expect(context.requestId != nil)
                }
                let header = try #require(call.headers[RemoteEnvelope.contextHeader])
                return try #require(RemoteEnvelope.decode(header)?.sdk.token)
            }
            func sdk(_ path: String, _ token: String?, _ body: [String: Any]? = nil) async throws -> TestHost.Reply {
                try await host.request(body == nil ? .GET : .POST, "/sdk/v1/" + path, token: token, json: body)
            }
            // What the client sends is what was signed, however odd the caller's path and query: a
            // malformed escape, an escaped letter, a space, a key that needs escaping.
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins/test.capture/resources/a%zz/b%41?q=a%20b&k%20=v").status == 200)
            // (The health checks reach the fake too: take the last call for a resource.)
            let odd = try #require(fake.received.last { $0.target.hasPrefix("/resources/") })
            let oddContext = try RemoteEnvelope.verify(
                method: odd.method, target: odd.target, headers: { odd.headers[$0] }, body: odd.body, expectedPlugin: "test.capture",
                expectedCall: .request, secretFor: { _, _ in enablementSecret }, remember: { _, _ in true }
            )
            #expect(oddContext.workspace == "ws1")
            // (The test's own HTTP client escapes the whole malformed path before the host sees it.)
            #expect(odd.target.hasPrefix("/resources/a%25zz/"))
            #expect(odd.target.hasSuffix("?q=a%20b&k%20=v"))

            let first = try await token("ws1")
            let issued = ContinuousClock.now
            let second = try await token("ws2")

            let context = try await sdk("context", first)
            #expect(context.json["workspace"] as? String == "ws1")
            #expect(context.json["grants"] as? [String] == ["storage.read"])
            #expect(try await sdk("storage/put", first, ["key": "k", "value": "YQ=="]).errorCode == "PERMISSION_DENIED")
            #expect(try await sdk("storage/put", second, ["key": "k", "value": "Yg=="]).json["version"] as? Int == 1)
            // ws2's value is not visible with ws1's token: there is no way to name ws2.
            #expect(try await sdk("storage/get", first, ["key": "k"]).errorCode == "NOT_FOUND")
            #expect(try await sdk("storage/get", second, ["key": "k"]).json["value"] as? String == "Yg==")

            // ws1's token rewritten to claim ws2 and storage.write: its signature no longer fits.
            let parts = first.split(separator: ".")
            let claimsData = try #require(Base64URL.decode(String(parts[1])))
            var claims = try #require(try JSONSerialization.jsonObject(with: claimsData) as? [String: Any])
            claims["workspace"] = "ws2"
            claims["grants"] = ["storage.read", "storage.write"]
            let forged = "pht1." + Base64URL.encode(try JSONSerialization.data(withJSONObject: claims)) + "." + parts[2]
            #expect(try await sdk("storage/put", forged, ["key": "k", "value": "YQ=="]).errorCode == "UNAUTHORIZED")
            #expect(try await sdk("storage/get", nil, ["key": "k"]).errorCode == "UNAUTHORIZED")

            // Disabled: the token's enablement is gone at once. (A fresh token, so that a slow machine
            // cannot let it expire first: the expiry is what is checked below.)
            let fresh = try await token("ws2")
            let freshIssued = ContinuousClock.now
            #expect(try await host.admin(.DELETE, "/v1/workspaces/ws2/plugins/test.capture").status == 204)
            let disabled = try await sdk("storage/get", fresh, ["key": "k"])
            #expect(disabled.errorCode == "PLUGIN_NOT_ENABLED", "\(disabled.status) \(disabled.text), \(ContinuousClock.now - freshIssued) after the token")

            // The call's timeout (4 s: room for a loaded machine) and no grace: then the token is refused.
            try await Task.sleep(until: issued + .milliseconds(4300))
            let expired = try await sdk("storage/get", first, ["key": "k"])
            #expect(expired.status == 401)
            #expect(expired.errorCode == "TOKEN_EXPIRED")
        }
    }

    @Test("a remote that is down opens its circuit (503 at once); back up, it serves again without a host restart")
    func circuitBreaker() async throws {
        let folder = try TemporaryFolder()
        let library = try Fixtures.library("EchoPlugin")
        var remote = try await RemotePluginProcess.servePlugin(library: library, folder: folder.path)
        let port = remote.port
        // A cool-down longer than fastRemotes', so that a loaded machine still refuses the fourth call at once.
        try await stoppingAfterwards({ remote }) { try await withHost(configure: { fastRemotes(&$0); $0.remote.cooldown = .seconds(3) }) { host in
            try remote.give(installSecret: try await host.install(Fixtures.remoteEcho(url: remote.url)))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
            let echo = "/v1/workspaces/ws1/plugins/example.echo/resources/echo"
            #expect(try await host.admin(.POST, echo, body: Data("ping".utf8)).text == "ping")

            await remote.stop()
            for _ in 0..<3 {
                let reply = try await host.admin(.POST, echo, body: Data("ping".utf8))
                #expect(reply.status == 502)
                #expect(reply.errorCode == "PLUGIN_BAD_GATEWAY")
            }
            // Refused by the open circuit, without a connection attempt.
            let refused = try await host.admin(.POST, echo, body: Data("ping".utf8))
            #expect(refused.status == 503)
            #expect(refused.errorCode == "PLUGIN_UNAVAILABLE")
            #expect(refused.text.contains("circuit is open"), "\(refused.text)")
            #expect(try await eventually {
                let status = try await host.admin(.GET, "/v1/plugins/example.echo").json["remote"] as? [String: any Sendable]
                return status?["health"] as? String == "unhealthy" && (status?["lastError"] as? String)?.contains("refused") == true
            })
            #expect(try await host.request(.GET, "/health").status == 200)
            // Said once at the default log level, with the plugin's id.
            let down = host.logs.entries.filter { "\($0.message)" == "remote plugin is down" }
            #expect(down.count == 1 && down.first?.level == .warning && down.first?.metadata["plugin.id"] == "example.echo")

            // Back on the same port, with its secrets lost: the host delivers the workspace's secret again.
            remote = try await RemotePluginProcess.servePlugin(library: library, folder: folder.path, port: port)
            #expect(try await eventually(timeout: .seconds(10)) { try await host.admin(.POST, echo, body: Data("back".utf8)).text == "back" })
            let status = try await host.admin(.GET, "/v1/plugins/example.echo").json["remote"] as? [String: any Sendable]
            #expect(status?["circuit"] as? String == "closed")
            #expect(try await eventually { (try await host.admin(.GET, "/v1/plugins/example.echo").json["remote"] as? [String: any Sendable])?["health"] as? String == "healthy" })
            // Healthy again: the old error is gone, and the host said so.
            let recovered = try await host.admin(.GET, "/v1/plugins/example.echo").json["remote"] as? [String: any Sendable]
            #expect(recovered?["lastError"] == nil, "\(recovered ?? [:])")
            #expect(host.logs.entries.contains { "\($0.message)" == "remote plugin is back" && $0.level == .notice })
        } }
    }

    @Test("a slow remote gets 504 PLUGIN_TIMEOUT, garbage or a closed connection 502; the host stays healthy")
    func misbehavingRemote() async throws {
        let fake = try FakeRemote()
        defer { fake.stop() }
        try await withHost(configure: { fastRemotes(&$0); $0.remote.failureThreshold = 100 }) { host in
            // 1 s: short of the slow mode's 3 s, long enough that garbage is read before it on a loaded machine.
            try await host.install(Fixtures.remoteEcho(url: "http://127.0.0.1:\(fake.port)", timeout: "1s"))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.echo", in: "ws1", grants: [])
            let echo = "/v1/workspaces/ws1/plugins/example.echo/resources/echo"

            fake.mode = .slow
            let started = ContinuousClock.now
            let slow = try await host.admin(.POST, echo, body: Data("x".utf8))
            #expect(slow.status == 504, "\(slow.text)")
            #expect(slow.errorCode == "PLUGIN_TIMEOUT")
            // The remote answers after 3 s: a 504 well before that is the host's own deadline.
            #expect(ContinuousClock.now - started < .milliseconds(2800))

            fake.mode = .garbage
            let garbage = try await host.admin(.POST, echo, body: Data("x".utf8))
            #expect(garbage.status == 502)
            #expect(garbage.errorCode == "PLUGIN_BAD_GATEWAY")

            fake.mode = .close
            let closed = try await host.admin(.POST, echo, body: Data("x".utf8))
            #expect(closed.status == 502)
            #expect(closed.errorCode == "PLUGIN_BAD_GATEWAY")

            #expect(try await host.request(.GET, "/health").status == 200)
            fake.mode = .ok
            let fine = try await host.admin(.POST, echo, body: Data("x".utf8))
            #expect(fine.status == 200, "\(fine.text)")
        }
    }

    @Test("events for a remote that is down are retried until it is back")
    func eventsAreRetried() async throws {
        let folder = try TemporaryFolder()
        let library = try Fixtures.library("AuditPlugin")
        var audit = try await RemotePluginProcess.servePlugin(library: library, folder: folder.path, name: "audit")
        let port = audit.port
        try await stoppingAfterwards({ audit }) { try await withHost(configure: fastRemotes) { host in
            try await host.install(try Fixtures.notes)
            try audit.give(installSecret: try await host.install(Fixtures.remote(try Fixtures.audit, url: audit.url)))
            try await host.tenant("acme", workspaces: ["ws1"])
            try await host.enable("example.notes", in: "ws1", grants: TestHost.notesGrants)
            try await host.enable("example.audit", in: "ws1", grants: TestHost.auditGrants)

            await audit.stop()
            #expect(try await host.admin(.POST, ConformanceTests.notes("ws1"), json: ["text": "while audit was down"]).status == 201)
            try await Task.sleep(for: .milliseconds(800))
            audit = try await RemotePluginProcess.servePlugin(library: library, folder: folder.path, port: port, name: "audit")
            #expect(try await eventually(timeout: .seconds(10)) {
                let entries = try await host.admin(.GET, "/v1/workspaces/ws1/plugins/example.audit/resources/entries").json["entries"] as? [[String: any Sendable]]
                return entries?.contains { "\($0["payload"] ?? "")".contains("while audit was down") } == true
            })
            let status = try await host.admin(.GET, "/v1/plugins/example.audit").json["remote"] as? [String: any Sendable]
            #expect(status?["droppedEvents"] as? Int == 0)
        } }
    }

    @Test("the install secret is shown once, can be rotated, and remote manifests are validated field by field")
    func installSecretAndManifest() async throws {
        try await withHost { host in
            let installed = try await host.install(Fixtures.remoteEcho(url: "http://127.0.0.1:9"))
            #expect((installed.json["installSecret"] as? String)?.hasPrefix("phk_") == true)
            #expect((installed.json["runtime"] as? [String: any Sendable])?["url"] as? String == "http://127.0.0.1:9")
            #expect(try await host.admin(.GET, "/v1/plugins/example.echo").json["installSecret"] == nil)
            let rotated = try await host.admin(.POST, "/v1/plugins/example.echo/install-secret")
            #expect(rotated.status == 201)
            #expect(rotated.json["installSecret"] as? String != installed.json["installSecret"] as? String)
            try await host.install(try Fixtures.notes)
            #expect(try await host.admin(.POST, "/v1/plugins/example.notes/install-secret").errorCode == "NOT_A_REMOTE_PLUGIN")
            // An upgrade cannot turn a library plugin into a remote one.
            let remoteNotes = Fixtures.remote(try Fixtures.notes, url: "http://127.0.0.1:9").replacingOccurrences(of: "version: 1.0.0", with: "version: 1.1.0")
            let kindChange = try await host.admin(.POST, "/v1/plugins", body: Data(remoteNotes.utf8), contentType: "application/yaml")
            #expect(kindChange.status == 400)
            #expect(kindChange.text.contains("runtime.kind"))
            // The secret is stored sealed, not as it was shown (the store holds it: the sealed value is there).
            let rotatedSecret = try #require(rotated.json["installSecret"] as? String)
            #expect(!storeFiles(in: host.data, contain: rotatedSecret))
            #expect(storeFiles(in: host.data, contain: "remote.install-secret:example.echo"))

            let bad = """
                id: example.bad
                name: Bad
                version: 1.0.0
                sdk: ^1.0.0
                runtime: {kind: remote, url: "ftp://example.com?x=1", timeout: 1e300s, path: lib.so}
                """
            let refused = try await host.admin(.POST, "/v1/plugins", body: Data(bad.utf8), contentType: "application/yaml")
            #expect(refused.status == 400)
            let details = (refused.json["error"] as? [String: any Sendable])?["details"] as? [String] ?? []
            #expect(details.contains { $0.hasPrefix("runtime.url") })
            #expect(details.contains { $0.hasPrefix("runtime.timeout") })
            #expect(details.contains { $0.hasPrefix("runtime.path") })
        }
    }

    @Test("a remote plugin's config must fit the context header: a larger one is refused before the remote is called")
    func remoteConfigSize() async throws {
        let fake = try FakeRemote()
        defer { fake.stop() }
        let manifest = Fixtures.remoteEcho(url: "http://127.0.0.1:\(fake.port)") + "\nconfig:\n  properties:\n    banner: {type: string}\n"
        try await withHost(configure: fastRemotes) { host in
            let installSecret = try #require(try await host.install(manifest).json["installSecret"] as? String)
            try await host.tenant("acme", workspaces: ["ws1"])
            // {"banner":"…"} is the text and 13 bytes.
            let limit = RemoteEnvelope.maximumConfigBytes
            let tooLarge = try await host.admin(.PUT, "/v1/workspaces/ws1/plugins/example.echo", json: ["grants": [], "config": ["banner": String(repeating: "x", count: limit)]])
            #expect(tooLarge.status == 400)
            #expect(tooLarge.errorCode == "INVALID_CONFIG")
            let details = (tooLarge.json["error"] as? [String: any Sendable])?["details"] as? [String] ?? []
            #expect(details.contains { $0.hasPrefix("config: \(limit + 13) bytes") && $0.contains("at most \(limit) bytes") }, "\(details)")
            // Nothing was enabled, and the remote was never called.
            #expect(try await host.admin(.GET, "/v1/workspaces/ws1/plugins").text.contains("example.echo") == false)
            #expect(!fake.received.contains { $0.target == "/plugin-host/v1/enabled" })

            // One that just fits is enabled, and the remote gets it whole.
            let banner = String(repeating: "x", count: limit - 13)
            try await host.enable("example.echo", in: "ws1", grants: [], config: ["banner": banner])
            let enabled = try #require(fake.received.first { $0.target == "/plugin-host/v1/enabled" })
            let verified = try RemoteEnvelope.verify(
                method: enabled.method, target: enabled.target, headers: { enabled.headers[$0] }, body: enabled.body, expectedPlugin: "example.echo",
                expectedCall: .enabled, secretFor: { _, _ in installSecret }, remember: { _, _ in true }
            )
            #expect(verified.config["banner"] == .string(banner))
            // The whole context header stays under the 8 KiB header line of nginx's and Apache's defaults.
            let header = try #require(enabled.headers[RemoteEnvelope.contextHeader])
            #expect(header.utf8.count < 8192, "\(header.utf8.count) bytes")
        }
    }
}
