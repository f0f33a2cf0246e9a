import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import PluginSDK

/// `ANY /v1/workspaces/{ws}/plugins/{pluginId}/resources/{path...}`: hands the request to the plugin.
struct ResourceController {
    let runtime: PluginRuntime

    static let methods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .head, .options]

    func addRoutes(to group: RouterGroup<HostRequestContext>) {
        for method in Self.methods {
            group.on("workspaces/:ws/plugins/:pluginId/resources/**", method: method, use: forward)
        }
    }

    @Sendable func forward(_ request: Request, context: HostRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workspace = try visibleWorkspace(runtime, context, principal)
        guard principal.canUse(workspace) else { throw HostError.forbidden("this token may not use workspace \(workspace.id)") }
        let pluginID = try context.parameters.require("pluginId")
        let body = try await request.collectBody(limit: runtime.configuration.maxBodySize)
        var headers: [String: String] = [:]
        for field in request.headers where field.name != .authorization {
            headers[field.name.canonicalName] = field.value
        }
        let pluginRequest = PluginRequest(
            method: request.method.rawValue,
            path: context.parameters.getCatchAll().joined(separator: "/"),
            query: Self.query(request.uri),
            headers: headers,
            body: Data(buffer: body),
            requestID: context.requestID
        )
        let response = try await runtime.handle(pluginRequest, workspace: workspace, pluginID: pluginID, caller: principal.caller)
        var fields = HTTPFields()
        for (name, value) in response.headers {
            guard let name = HTTPField.Name(name), !Self.hopByHop.contains(name) else { continue }
            fields.append(HTTPField(name: name, value: value))
        }
        return Response(
            status: HTTPResponse.Status(code: response.status),
            headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body))
        )
    }

    private static let hopByHop: Set<HTTPField.Name> = [.connection, .transferEncoding, .contentLength]

    private static func query(_ uri: URI) -> [String: [String]] {
        var query: [String: [String]] = [:]
        for (name, value) in uri.queryParameters {
            query[String(name), default: []].append(String(value))
        }
        return query
    }
}
