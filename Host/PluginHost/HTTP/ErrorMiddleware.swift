import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

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
            response = Self.response(for: hostError(error, context: context), requestID: context.requestID)
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
        var body: [String: Any] = ["code": error.code, "message": error.message, "requestId": requestID]
        if !error.details.isEmpty { body["details"] = error.details }
        if let current = error.current { body["current"] = current }
        let data = (try? JSONSerialization.data(withJSONObject: ["error": body], options: [.sortedKeys])) ?? Data()
        return Response(
            status: HTTPResponse.Status(code: error.status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("X-Request-ID")!
}
