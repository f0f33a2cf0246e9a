import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1

/// Turns every error into the API's JSON error body with a stable code and the request id, and stamps
/// `X-Request-ID` on every response. Errors the API does not know become 500 `INTERNAL` and a log line;
/// their text never reaches the caller.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            var context = context
            var error = error
            if let failure = error as? AuthenticatedFailure {
                context.principal = failure.principal
                error = failure.underlying
            }
            let refusal = hostError(error, context: context)
            if refusal.status < 500, context.logLevel <= .debug {
                context.logger.debug("request refused", metadata: ["error.code": "\(refusal.code)", "http.status": "\(refusal.status)"])
            }
            response = Self.response(for: refusal, requestID: context.requestID)
        }
        // Appended unless already there: the subscript's setter rewrites the fields to replace all values.
        if response.headers.contains(.requestID) {
            response.headers[.requestID] = context.requestID
        } else {
            response.headers.append(HTTPField(name: .requestID, value: context.requestID))
        }
        return response
    }

    private func hostError(_ error: any Error, context: Context) -> HostError {
        switch error {
        case let error as HostError: return error
        case is NIOTooManyBytesError: return HostError(413, "PAYLOAD_TOO_LARGE", "the request body is too large")
        case let error as HTTPParserError: return Self.malformed(error)
        case let error as RequestBodyTimeout: return HostError(408, "REQUEST_TIMEOUT", "\(error); the connection is closed")
        case let error as HTTPError:
            switch error.status.code {
            case 404: return HostError(404, "NOT_FOUND", "no such route; see openapi.yaml for the API")
            case 405: return HostError(405, "METHOD_NOT_ALLOWED", "this route does not take that method")
            default: return HostError(error.status.code, "HTTP_\(error.status.code)", error.body ?? error.status.reasonPhrase)
            }
        case let error as StoreError where error.code == .unavailable:
            context.logger.error("store unavailable", metadata: ["error": "\(error.message)"])
            return HostError.storeUnavailable()
        default:
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return HostError(500, "INTERNAL", "the host failed to handle the request; the error is logged under this request id")
        }
    }

    static func response(for error: HostError, requestID: String) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        // Nothing more can be read from a connection whose request could not be read.
        if error.status == 400 && error.code == Self.malformedHTTP || error.status == 408 { headers[.connection] = "close" }
        return Response(status: HTTPResponse.Status(code: error.status), headers: headers, body: ResponseBody(byteBuffer: body(for: error, requestID: requestID)))
    }

    /// The API's error body: `{"error": {"code", "message", "requestId", "details"?, "current"?}}`.
    static func body(for error: HostError, requestID: String) -> ByteBuffer {
        var body: [String: Any] = ["code": error.code, "message": error.message, "requestId": requestID]
        if !error.details.isEmpty { body["details"] = error.details }
        if let current = error.current { body["current"] = current }
        let data = (try? JSONSerialization.data(withJSONObject: ["error": body], options: [.sortedKeys])) ?? Data()
        return ByteBuffer(bytes: data)
    }

    static let malformedHTTP = "MALFORMED_REQUEST"

    /// A request the HTTP parser refused, by its head or in its body.
    static func malformed(_ error: any Error) -> HostError {
        HostError(400, malformedHTTP, "the request is not valid HTTP/1.1 (\(error)); the connection is closed")
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-ID")!
}
