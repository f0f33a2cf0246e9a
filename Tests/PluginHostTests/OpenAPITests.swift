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
        try await withHost(configure: { $0.maxBodySize = 4096; $0.pluginTimeout = .milliseconds(300) }) { host in
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
        }

        let document = try #require(try Yams.load(yaml: String(contentsOf: Fixtures.root.appendingPathComponent("openapi.yaml"), encoding: .utf8)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: Any])
        let description = ((document["info"] as? [String: Any])?["description"] as? String) ?? ""
        let statuses = Set(observed.seen.map(\.status))
        #expect(statuses.isSuperset(of: [200, 201, 204, 400, 401, 403, 404, 409, 413, 415, 500, 504]), "the scenario covers every status: \(statuses.sorted())")
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
        }
    }
}
