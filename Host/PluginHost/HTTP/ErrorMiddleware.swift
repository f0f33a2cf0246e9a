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
            let refusal = apiError(error, context: context)
            if refusal.status.code < 500, context.logLevel <= .debug {
                context.logger.debug("request refused", metadata: ["error.code": "\(refusal.code)", "http.status": "\(refusal.status.code)"])
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

    /// The answer to an error: what the host says went wrong, or what the HTTP layer found.
    private func apiError(_ error: any Error, context: Context) -> APIError {
        switch error {
        case let error as HostError:
            if case .internalFailure(let why) = error { context.logger.error("request failed", metadata: ["error": "\(why)"]) }
            return APIError(error)
        case let error as APIError: return error
        case is NIOTooManyBytesError: return APIError(.contentTooLarge, "PAYLOAD_TOO_LARGE", "the request body is too large")
        case let error as HTTPParserError: return APIError(.malformedHTTP("\(error)"))
        case let error as RequestBodyTimeout: return APIError(.bodyTimeout(seconds: error.timeout.nanoseconds / 1_000_000_000))
        case let error as HTTPError:
            switch error.status.code {
            case 404: return APIError(.notFound, "NOT_FOUND", "no such route; see openapi.yaml for the API")
            case 405: return APIError(.methodNotAllowed, "METHOD_NOT_ALLOWED", "this route does not take that method")
            default: return APIError(error.status, "HTTP_\(error.status.code)", error.body ?? error.status.reasonPhrase)
            }
        case let error as StoreError where error.code == .unavailable:
            context.logger.error("store unavailable", metadata: ["error": "\(error.message)"])
            return APIError(.storeUnavailable)
        default:
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return APIError(.internalFailure(""))
        }
    }

    static func response(for error: APIError, requestID: String) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        // Nothing more can be read from a connection whose request could not be read.
        if error.code == "MALFORMED_REQUEST" || error.code == "REQUEST_TIMEOUT" { headers[.connection] = "close" }
        return Response(status: error.status, headers: headers, body: ResponseBody(byteBuffer: body(for: error, requestID: requestID)))
    }

    /// The API's error body: `{"error": {"code", "message", "requestId", "details"?, "current"?, "key"?}}`.
    static func body(for error: APIError, requestID: String) -> ByteBuffer {
        let body = RemoteWire.ErrorBody(.init(
            code: error.code, message: error.message, requestId: requestID, details: error.details.isEmpty ? nil : error.details, current: error.current,
            key: error.key
        ))
        return ByteBuffer(bytes: (try? RemoteWire.encode(body)) ?? Data())
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-ID")!
}
