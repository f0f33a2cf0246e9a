import Foundation
import NIOHTTP1
import PluginHost
import Testing
import Yams

@Suite("OpenAPI document")
struct OpenAPITests {
    /// What the host answered, by route template, as the document must describe it.
    final class Observations: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var seen: [(method: String, template: String, status: Int, code: String?, body: [String: any Sendable])] = []
        func add(_ method: String, _ template: String, _ reply: TestHost.Reply) {
            lock.withLock { seen.append((method, template, reply.status, reply.errorCode, reply.json)) }
        }
    }

    @Test("every route, status and error code the host serves is in openapi.yaml")
    func documentMatchesHost() async throws {
        let observed = Observations()
        // A remote that answers every call 200 `{}` (and hands the test the SDK token of each request), and
        // the discard port, where nothing listens on 127.0.0.1 (as in the other remote tests).
        let fake = try FakeRemote()
        defer { fake.stop() }
        let down = 9
        try await withHost(configure: {
            $0.maxBodySize = 4096
            $0.pluginTimeout = .milliseconds(300)
            $0.remote.connectTimeout = .milliseconds(50)
            $0.remote.failureThreshold = 2
        }) { host in
            func call(_ method: HTTPMethod, _ template: String, _ path: String, token: String?? = .none, json: Any? = nil, body: Data? = nil, type: String? = nil) async throws {
                let reply = try await host.request(method, path, token: token ?? host.adminToken, json: json, body: body, contentType: type)
                observed.add(method.rawValue, template, reply)
            }
            let resources = "/v1/workspaces/{ws}/plugins/{pluginId}/resources/{path}"
            try await call(.GET, "/health", "/health", token: .some(nil))
            try await call(.GET, "/ready", "/ready", token: .some(nil))
            try await call(.GET, "/metrics", "/metrics", token: .some(nil))
            try await call(.GET, "/v1/plugins", "/v1/plugins", token: .some(nil))
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data(try Fixtures.notes.utf8), type: "application/yaml")
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data(try Fixtures.faulty().utf8), type: "application/yaml")
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data(try Fixtures.echo.utf8), type: "application/json")
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data("id: x".utf8), type: "application/yaml")
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data("x".utf8), type: "text/html")
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data(count: 8192), type: "application/yaml")
            try await call(.GET, "/v1/plugins", "/v1/plugins")
            try await call(.GET, "/v1/plugins/{pluginId}", "/v1/plugins/example.notes")
            try await call(.GET, "/v1/plugins/{pluginId}", "/v1/plugins/nope.nope")
            try await call(.POST, "/v1/tenants", "/v1/tenants", json: ["id": "acme", "name": "Acme"])
            try await call(.POST, "/v1/tenants", "/v1/tenants", json: ["id": "acme", "name": "Acme"])
            try await call(.POST, "/v1/tenants", "/v1/tenants", json: ["id": "Bad Id!", "name": "x"])
            try await call(.GET, "/v1/tenants", "/v1/tenants")
            try await call(.POST, "/v1/tenants/{tenantId}/workspaces", "/v1/tenants/acme/workspaces", json: ["id": "ws1", "name": "One"])
            try await call(.POST, "/v1/tenants/{tenantId}/workspaces", "/v1/tenants/acme/workspaces", json: ["id": "ws1", "name": "One"])
            try await call(.POST, "/v1/tenants/{tenantId}/workspaces", "/v1/tenants/nobody/workspaces", json: ["id": "ws9", "name": "x"])
            try await call(.GET, "/v1/tenants/{tenantId}/workspaces", "/v1/tenants/acme/workspaces")
            try await call(.POST, "/v1/tenants/{tenantId}/tokens", "/v1/tenants/acme/tokens", json: ["role": "member", "subject": "m", "workspaces": ["ws1"]])
            let member = observed.seen.last?.body["token"] as? String
            try await call(.POST, "/v1/tenants/{tenantId}/tokens", "/v1/tenants/acme/tokens", json: ["role": "owner", "subject": "m"])
            try await call(.POST, "/v1/tenants/{tenantId}/tokens", "/v1/tenants/acme/tokens", json: ["role": "member", "subject": "revoked", "workspaces": ["ws1"]])
            let revoked = try #require(observed.seen.last?.body["id"] as? String)
            try await call(.GET, "/v1/tenants/{tenantId}/tokens", "/v1/tenants/acme/tokens")
            try await call(.DELETE, "/v1/tenants/{tenantId}/tokens/{tokenId}", "/v1/tenants/acme/tokens/\(revoked)")
            try await call(.DELETE, "/v1/tenants/{tenantId}/tokens/{tokenId}", "/v1/tenants/acme/tokens/\(revoked)")
            // Platform admin tokens: another made and revoked; the last one stays.
            try await call(.POST, "/v1/tokens", "/v1/tokens", json: ["subject": "second admin"])
            let second = try #require(observed.seen.last?.body["id"] as? String)
            try await call(.POST, "/v1/tokens", "/v1/tokens", json: ["subject": ""])
            try await call(.POST, "/v1/tokens", "/v1/tokens", token: .some(member), json: ["subject": "x"])
            try await call(.GET, "/v1/tokens", "/v1/tokens")
            try await call(.DELETE, "/v1/tokens/{tokenId}", "/v1/tokens/\(second)")
            try await call(.DELETE, "/v1/tokens/{tokenId}", "/v1/tokens/\(second)")
            try await call(.GET, "/v1/tokens", "/v1/tokens")
            let last = try #require((observed.seen.last?.body["tokens"] as? [[String: any Sendable]])?.first?["id"] as? String)
            try await call(.DELETE, "/v1/tokens/{tokenId}", "/v1/tokens/\(last)")
            let enable = "/v1/workspaces/{ws}/plugins/{pluginId}"
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/example.notes", json: ["grants": TestHost.notesGrants])
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/test.faulty", json: ["grants": []])
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/example.echo", json: ["grants": ["storage.read"]])
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/nope.nope", json: ["grants": []])
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/test.faulty", token: .some(member), json: ["grants": []])
            try await call(.GET, "/v1/workspaces/{ws}/plugins", "/v1/workspaces/ws1/plugins")
            try await call(.GET, "/v1/workspaces/{ws}/plugins", "/v1/workspaces/ws404/plugins")
            try await call(.POST, resources, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["text": "hi"])
            try await call(.POST, resources, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", json: ["nope": "hi"])
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: .some(member))
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/example.notes/resources/other")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/example.echo/resources/echo")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/test.faulty/resources/throw")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/test.faulty/resources/hang")
            try await call(.POST, resources, "/v1/workspaces/ws1/plugins/test.faulty/resources/big", body: Data(count: 8192), type: "application/octet-stream")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/example.notes/resources/notes", token: .some("wrong"))
            try await call(.DELETE, "/v1/plugins/{pluginId}", "/v1/plugins/example.notes")
            try await call(.DELETE, enable, "/v1/workspaces/ws1/plugins/example.notes")
            try await call(.DELETE, enable, "/v1/workspaces/ws1/plugins/example.notes")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/example.notes/resources/notes")
            try await call(.DELETE, "/v1/plugins/{pluginId}", "/v1/plugins/example.notes")
            try await call(.DELETE, "/v1/plugins/{pluginId}", "/v1/plugins/example.notes")
            try await call(.GET, "/v1/plugins", "/v1/plugins", token: .some(member))

            // Remote plugins: the install answers the install secret once; a platform admin rotates it.
            let installSecret = "/v1/plugins/{pluginId}/install-secret"
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data(Self.remote("test.remote", port: down).utf8), type: "application/yaml")
            #expect(observed.seen.last?.body["installSecret"] is String, "the install of a new remote plugin answers its install secret")
            let captureGrants = ["storage.read", "storage.write", "events.publish:capture.*"]
            try await call(.POST, "/v1/plugins", "/v1/plugins", body: Data(Self.remote("test.capture", port: fake.port, permissions: captureGrants).utf8))
            try await call(.GET, "/v1/plugins/{pluginId}", "/v1/plugins/test.remote")
            #expect(observed.seen.last?.body["installSecret"] == nil, "the install secret is shown only once")
            try await call(.POST, installSecret, "/v1/plugins/test.remote/install-secret")
            try await call(.POST, installSecret, "/v1/plugins/example.echo/install-secret")
            try await call(.POST, installSecret, "/v1/plugins/nope.nope/install-secret")
            try await call(.POST, installSecret, "/v1/plugins/test.remote/install-secret", token: .some(member))
            try await call(.POST, installSecret, "/v1/plugins/test.remote/install-secret", token: .some(nil))
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/test.remote", json: ["grants": []])
            #expect(observed.seen.last?.code == "PLUGIN_BAD_GATEWAY", "enabling a remote nothing listens for")
            try await call(.PUT, enable, "/v1/workspaces/ws1/plugins/test.capture", json: ["grants": captureGrants])
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/test.capture/resources/x")
            try await call(.GET, "/v1/plugins/{pluginId}", "/v1/plugins/test.capture")

            // The SDK over HTTP, with the token of that request.
            let request = fake.received.last { $0.target.hasPrefix("/resources/") }
            let token = try #require(request?.headers[RemoteEnvelope.contextHeader].flatMap(RemoteEnvelope.decode)?.sdk.token)
            func sdk(_ method: HTTPMethod, _ path: String, token: String? = token, json: Any? = nil, body: Data? = nil) async throws {
                try await call(method, path, path, token: .some(token), json: json, body: body, type: body == nil ? nil : "application/json")
            }
            try await sdk(.GET, "/sdk/v1/context")
            try await sdk(.GET, "/sdk/v1/context", token: nil)
            try await sdk(.POST, "/sdk/v1/storage/put", json: ["key": "k", "value": "YQ=="])
            try await sdk(.POST, "/sdk/v1/storage/put", json: ["key": "k", "value": "Yg==", "ifVersion": 0])
            try await sdk(.POST, "/sdk/v1/storage/put", json: ["key": "k", "value": "not base64!"])
            try await sdk(.POST, "/sdk/v1/storage/put", json: ["key": String(repeating: "k", count: 1025), "value": "YQ=="])
            try await sdk(.POST, "/sdk/v1/storage/put", token: nil, json: ["key": "k", "value": "YQ=="])
            try await sdk(.POST, "/sdk/v1/storage/get", json: ["key": "k"])
            try await sdk(.POST, "/sdk/v1/storage/get", json: ["key": "missing"])
            try await sdk(.POST, "/sdk/v1/storage/get", body: Data(count: 8192))
            try await sdk(.POST, "/sdk/v1/storage/get", token: nil, json: ["key": "k"])
            try await sdk(.POST, "/sdk/v1/storage/get", token: "pht1.garbage.garbage", json: ["key": "k"])
            try await sdk(.POST, "/sdk/v1/storage/list", json: ["prefix": ""])
            try await sdk(.POST, "/sdk/v1/storage/list", token: nil, json: ["prefix": ""])
            try await sdk(.POST, "/sdk/v1/storage/delete", json: ["key": "k"])
            try await sdk(.POST, "/sdk/v1/storage/delete", token: nil, json: ["key": "k"])
            try await sdk(.POST, "/sdk/v1/events/publish", json: ["type": "capture.done", "payload": "e30="])
            try await sdk(.POST, "/sdk/v1/events/publish", json: ["type": "other.done", "payload": "e30="])
            try await sdk(.POST, "/sdk/v1/events/publish", token: nil, json: ["type": "capture.done", "payload": "e30="])

            // The remote closes connections: 502, and after two failures in a row its circuit is open: 503.
            fake.mode = .close
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/test.capture/resources/x")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/test.capture/resources/x")
            try await call(.GET, resources, "/v1/workspaces/ws1/plugins/test.capture/resources/x")
            fake.mode = .ok
            try await call(.DELETE, enable, "/v1/workspaces/ws1/plugins/test.capture")
            try await sdk(.POST, "/sdk/v1/storage/get", json: ["key": "k"])
        }

        let document = try #require(try Yams.load(yaml: String(contentsOf: Fixtures.root.appendingPathComponent("openapi.yaml"), encoding: .utf8)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: Any])
        let description = ((document["info"] as? [String: Any])?["description"] as? String) ?? ""
        let statuses = Set(observed.seen.map(\.status))
        #expect(statuses.isSuperset(of: [200, 201, 202, 204, 400, 401, 403, 404, 409, 413, 415, 500, 502, 503, 504]), "the scenario covers every status: \(statuses.sorted())")
        for seen in observed.seen {
            let operation = (paths[seen.template] as? [String: Any])?[seen.method.lowercased()] as? [String: Any]
            #expect(operation != nil, "\(seen.method) \(seen.template) is not in openapi.yaml")
            let responses = operation?["responses"] as? [String: Any] ?? [:]
            #expect(responses[String(seen.status)] != nil || (responses["default"] != nil && seen.template.hasSuffix("{path}") && seen.code == nil),
                    "\(seen.method) \(seen.template) answered \(seen.status) (\(seen.code ?? "-")), which openapi.yaml does not list")
            if let code = seen.code {
                #expect(description.contains("`\(code)`"), "error code \(code) is not in the document's table")
                let error = seen.body["error"] as? [String: any Sendable]
                #expect(error?["message"] is String && error?["requestId"] is String, "error body of \(seen.template) lacks message or requestId")
            }
            // A JSON answer has the fields its documented schema declares, and no others.
            let documented = Self.resolve(responses[String(seen.status)], in: document)
            if (200..<300).contains(seen.status), let schema = ((documented?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] {
                let problems = Self.undocumentedFields(seen.body, schema, in: document)
                #expect(problems.isEmpty, "\(seen.method) \(seen.template) answered \(seen.status) with fields openapi.yaml does not describe: \(problems)")
            }
        }
    }

    /// `object`, or what its `$ref` (`#/components/...`) names.
    static func resolve(_ object: Any?, in document: [String: Any]) -> [String: Any]? {
        guard var object = object as? [String: Any] else { return nil }
        while let reference = object["$ref"] as? String, reference.hasPrefix("#/") {
            var target: Any? = document
            for part in reference.dropFirst(2).split(separator: "/") { target = (target as? [String: Any])?[String(part)] }
            guard let resolved = target as? [String: Any] else { return nil }
            object = resolved
        }
        return object
    }

    /// Where a JSON `value` has an object field its `schema` does not declare, or lacks one the schema
    /// requires, following `$ref`, `oneOf`/`anyOf` (one branch must fit), `items` and `additionalProperties`.
    static func undocumentedFields(_ value: Any, _ schema: Any?, in document: [String: Any], at path: String = "$") -> [String] {
        guard let schema = resolve(schema, in: document) else { return [] }
        if let branches = (schema["oneOf"] ?? schema["anyOf"]) as? [Any] {
            let problems = branches.map { undocumentedFields(value, $0, in: document, at: path) }
            return problems.contains(where: \.isEmpty) ? [] : problems.min { $0.count < $1.count } ?? []
        }
        if let array = value as? [Any] {
            return array.enumerated().flatMap { undocumentedFields($1, schema["items"], in: document, at: "\(path)[\($0)]") }
        }
        guard let object = value as? [String: Any], let properties = schema["properties"] as? [String: Any] else { return [] }
        var problems = (schema["required"] as? [String] ?? []).filter { object[$0] == nil }.map { "\(path).\($0) is missing" }
        for (name, field) in object.sorted(by: { $0.key < $1.key }) {
            if let property = properties[name] {
                problems += undocumentedFields(field, property, in: document, at: "\(path).\(name)")
            } else if let additional = schema["additionalProperties"] as? [String: Any] {
                problems += undocumentedFields(field, additional, in: document, at: "\(path).\(name)")
            } else {
                problems.append("\(path).\(name) is not documented")
            }
        }
        return problems
    }

    /// A remote plugin's manifest for a remote on `port` of 127.0.0.1.
    static func remote(_ id: String, port: Int, permissions: [String] = []) -> String {
        """
        id: \(id)
        name: Remote
        version: 1.0.0
        sdk: ^1.0.0
        runtime: {kind: remote, url: "http://127.0.0.1:\(port)", timeout: 1s}
        permissions: [\(permissions.map { "\"\($0)\"" }.joined(separator: ", "))]
        """
    }
}
