import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOHTTPTypes
@testable import PluginHost
import PluginSDK
import Synchronization
import Testing

/// The HTTP layer without a host: the one middleware list, the one error mapping, and the connection
/// guard's state machine.
@Suite("HTTP layer")
struct HTTPLayerTests {
    /// Records that it ran, in order.
    struct Recorder: RouterMiddleware {
        typealias Context = HostRequestContext
        let name: String
        let seen: Seen

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            seen.names.withLock { $0.append(name) }
            return try await next(request, context)
        }
    }

    /// A responder with a fast path for one URI, as ``HostResponder`` has for resource paths.
    struct FastPath: HTTPResponder {
        typealias Context = HostRequestContext
        let router: RouterResponder<HostRequestContext>
        let middleware: HostMiddleware

        func respond(to request: Request, context: Context) async throws -> Response {
            guard request.uri.path == "/v1/fast" else { return try await router.respond(to: request, context: context) }
            return try await middleware.respond(to: request, context: context) { _, _ in Response(status: .ok) }
        }
    }

    @Test("a /v1 route of the router and the fast path go through the same middleware, in the same order")
    func oneMiddlewareList() async throws {
        let seen = Seen()
        let middleware = HostMiddleware(
            everyRoute: [Recorder(name: "outer", seen: seen), Recorder(name: "second", seen: seen)], v1: [Recorder(name: "v1", seen: seen)]
        )
        let router = Router(context: HostRequestContext.self)
        let v1 = middleware.install(on: router)
        v1.get("routed") { _, _ in Response(status: .ok) }
        router.get("health") { _, _ in Response(status: .ok) }
        let app = Application(responder: FastPath(router: router.buildResponder(), middleware: middleware))
        try await app.test(.router) { client in
            for (uri, expected) in [("/v1/routed", ["outer", "second", "v1"]), ("/v1/fast", ["outer", "second", "v1"]), ("/health", ["outer", "second"])] {
                seen.names.withLock { $0 = [] }
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .ok)
                #expect(seen.names.withLock { $0 } == expected, "\(uri)")
            }
        }
    }

    @Test("every HostError maps to a status and a code the API documents", arguments: [
        (HostError.pluginNotEnabled(plugin: "p", workspace: "w"), 404, "PLUGIN_NOT_ENABLED"),
        (.routeNotFound(plugin: "p", method: "GET", path: "x"), 404, "ROUTE_NOT_FOUND"),
        (.storeUnavailable, 503, "STORE_UNAVAILABLE"),
        (.pluginTimeout(plugin: "p", after: .seconds(1)), 504, "PLUGIN_TIMEOUT"),
        (.hookFailed(plugin: "p", hook: "enabled", cause: .pluginRefused(.badRequest("no"))), 400, "BAD_REQUEST"),
        (.hookRefused(plugin: "p", hook: "enabled", status: 422, code: "NOPE", message: nil), 422, "NOPE"),
        (.hookRefused(plugin: "p", hook: "enabled", status: 500, code: nil, message: nil), 502, "PLUGIN_BAD_GATEWAY"),
        (.passedOn(.unavailable("storage is down"), storeFailed: true), 503, "STORE_UNAVAILABLE"),
        (.passedOn(.unavailable("shutting down"), storeFailed: false), 503, "HOST_UNAVAILABLE"),
        (.pluginRefused(.versionConflict(key: "k", current: 7)), 409, "VERSION_CONFLICT"),
        (.internalFailure("a secret detail"), 500, "INTERNAL"),
    ])
    func errorMapping(error: HostError, status: Int, code: String) throws {
        let mapped = APIError(error)
        #expect(Int(mapped.status.code) == status)
        #expect(mapped.code == code)
        #expect(!mapped.message.contains("a secret detail"))
        let documented = try String(contentsOf: Fixtures.root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        #expect(documented.contains("`\(code)`") || code == "NOPE", "\(code) is not in openapi.yaml")
        if case .pluginRefused(.versionConflict) = error { #expect(mapped.current == 7) }
    }

    @Test("the connection guard answers a parser error itself only outside a request, and closes after the answer in flight", arguments: [
        // (parts read before the error, responses finished, expected action)
        (0, 0, ConnectionGuardState.FailureAction.answerAndClose),
        (1, 0, .forward),   // head read, body not finished, no answer yet: the request's own answer
        (2, 0, .ignore),    // a whole request read, its answer not finished: close after it
        (2, 1, .answerAndClose),
    ])
    func guardState(partsRead: Int, answered: Int, expected: ConnectionGuardState.FailureAction) {
        var state = ConnectionGuardState()
        let head = HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/"))
        let parts: [HTTPRequestPart] = [head, .end(nil)]
        for part in parts.prefix(partsRead) { _ = state.read(part) }
        for _ in 0..<answered { _ = state.write(.end(nil)) }
        #expect(state.failed() == expected)
        #expect(state.failed() == .ignore, "a second failure is ignored")
        if expected == .forward || expected == .ignore {
            #expect(state.write(.end(nil)) == .writeAndClose, "the connection closes once the answer in flight is written")
        }
        #expect(state.read(head) == .drop, "nothing is read after a failure")
    }

    @Test("the body deadline runs only for the one request awaiting its answer, not behind an earlier one")
    func bodyDeadlineBehindPipelinedRequest() {
        var state = ConnectionGuardState()
        let head = HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/"))
        _ = state.read(head)
        #expect(state.isBodyDue, "the first request's body is the client's to send")
        _ = state.read(.end(nil))
        _ = state.read(head)
        #expect(!state.isBodyDue, "while the first awaits its answer, the server may not be reading the second's body")
        _ = state.write(.end(nil))
        #expect(state.isBodyDue, "once the first is answered, the second's body is due")
    }

    @Test("a remote's error body gives its code even when its other fields have other shapes")
    func lenientErrorBody() throws {
        let body = Data(#"{"error": {"code": "NOPE", "message": 7, "details": [{"field": "x"}], "current": "three"}}"#.utf8)
        let decoded = try RemoteWire.decode(RemoteWire.ErrorBody.self, from: body)
        #expect(decoded.error.code == "NOPE")
        #expect(decoded.error.message == nil && decoded.error.details == nil && decoded.error.current == nil)
        #expect(throws: (any Error).self) { try RemoteWire.decode(RemoteWire.ErrorBody.self, from: Data(#"{"error": {"message": "no code"}}"#.utf8)) }
    }
}

/// Names recorded in order, shared by the recorders of one test.
final class Seen: Sendable {
    let names = Mutex<[String]>([])
}
