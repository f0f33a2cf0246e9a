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
        let target = ResourceTarget(
            workspaceID: try context.parameters.require("ws"), pluginID: try context.parameters.require("pluginId"),
            path: Self.resourcePath(context.parameters[Parameters.recursiveCaptureKey] ?? "")
        )
        return try await forward(request, context: context, target: target)
    }

    /// Hands the request to the plugin `target` names; ``HostResponder`` calls this for the paths it matches.
    func forward(_ request: Request, context: HostRequestContext, target: ResourceTarget) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workspace = try visibleWorkspace(runtime, id: target.workspaceID, principal)
        guard principal.canUse(workspace) else { throw HostError.forbidden("this token may not use workspace \(workspace.id)") }
        let pluginID = target.pluginID
        let body = try await request.collectBody(limit: runtime.configuration.maxBodySize)
        var headers: [String: String] = [:]
        headers.reserveCapacity(request.headers.count)
        // The route header is the host's to set (for `request.parameters`): a caller's never gets through.
        for field in request.headers where field.name != .authorization && field.name.canonicalName != PluginRequest.routeHeader {
            headers[field.name.canonicalName] = field.value
        }
        let pluginRequest = PluginRequest(
            method: request.method.rawValue,
            path: target.path,
            query: Self.query(request.uri),
            headers: headers,
            body: Data(buffer: body),
            requestID: context.requestID
        )
        var call = try runtime.dispatcher.prepare(
            workspace: workspace, pluginID: pluginID, method: pluginRequest.method, path: pluginRequest.path, caller: principal.caller, requestID: context.requestID
        )
        if let query = request.uri.query { call.details = RequestDetails(rawQuery: query, route: call.route) }
        // Counted by the status the caller gets, which only this layer knows.
        let started = ContinuousClock.now
        var response: PluginResponse
        var replayed = false
        do {
            if let key = request.headers[Self.idempotencyKey], request.method != .get, request.method != .head {
                guard Idempotency.isValid(key) else {
                    throw HostError.invalidInput("Idempotency-Key must be 1 to \(Idempotency.maximumKeyBytes) visible ASCII characters")
                }
                // Per token: subjects are labels that several tokens may share.
                let scope = IdempotencyScope(workspaceID: workspace.id, pluginID: pluginID, caller: principal.tokenID, key: key)
                let hash = Idempotency.requestHash(method: pluginRequest.method, path: pluginRequest.path, query: request.uri.query, body: pluginRequest.body)
                (response, replayed) = try await runtime.idempotency.run(scope, requestHash: hash, callLimit: call.bound.runner.callLimit) {
                    try await runtime.dispatcher.call(pluginRequest, context: call, started: started)
                }
            } else {
                response = try await runtime.dispatcher.call(pluginRequest, context: call, started: started)
            }
        } catch {
            call.bound.requestMetrics.record(status: (error as? HostError).map { Int(APIError($0).status.code) } ?? 500, duration: ContinuousClock.now - started)
            throw error
        }
        call.bound.requestMetrics.record(status: response.status, duration: ContinuousClock.now - started)
        var fields = HTTPFields()
        for (name, value) in response.headers {
            guard let name = Self.fieldName(name), name != .connection, name != .transferEncoding, name != .contentLength else { continue }
            fields.append(HTTPField(name: name, value: value))
        }
        // The first answer to this Idempotency-Key, kept: the plugin did not run again.
        if replayed { fields[Self.idempotentReplayed] = "true" }
        return Response(
            status: HTTPResponse.Status(code: response.status),
            headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body))
        )
    }

    /// The path below `resources/` with empty segments dropped, as `Parameters.getCatchAll()` splits
    /// it. Most paths have none, and are taken as they are instead of split into an array and joined.
    static func resourcePath(_ captured: Substring) -> String {
        let slash = UInt8(ascii: "/")
        var previous = slash
        for byte in captured.utf8 {
            if byte == slash && previous == slash { return captured.split(separator: "/").joined(separator: "/") }
            previous = byte
        }
        return previous == slash ? captured.split(separator: "/").joined(separator: "/") : String(captured)
    }

    /// A plugin's header name as a field name; the usual one is matched without parsing.
    private static func fieldName(_ name: String) -> HTTPField.Name? {
        switch name {
        case "content-type", "Content-Type": .contentType
        default: HTTPField.Name(name)
        }
    }

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!

    private static func query(_ uri: URI) -> [String: [String]] {
        var query: [String: [String]] = [:]
        for (name, value) in uri.queryParameters {
            query[String(name), default: []].append(String(value))
        }
        return query
    }
}
