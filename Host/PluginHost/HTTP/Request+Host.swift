import Foundation
import Hummingbird
import NIOCore

extension Request {
    /// The body, refused with 413 `PAYLOAD_TOO_LARGE` beyond `limit` bytes.
    func collectBody(limit: Int) async throws -> ByteBuffer {
        // The first Content-Length, found by a scan: the fields' subscript joins all values into a new string.
        if let length = headers.first(where: { $0.name == .contentLength }).flatMap({ Int($0.value) }), length > limit {
            throw HostError.bodyTooLarge(limit: limit)
        }
        do {
            return try await body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw HostError.bodyTooLarge(limit: limit)
        }
    }

    /// Decodes a JSON body; a malformed one is 400 `BAD_REQUEST` naming the field that is wrong.
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        let buffer = try await collectBody(limit: limit)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch let DecodingError.keyNotFound(key, context) {
            throw HostError.badRequest("missing field \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(type, context) {
            throw HostError.badRequest("field \(context.codingPath.map(\.stringValue).joined(separator: ".")) must be \(type)")
        } catch let DecodingError.valueNotFound(_, context) {
            throw HostError.badRequest("field \(context.codingPath.map(\.stringValue).joined(separator: ".")) must not be null")
        } catch {
            throw HostError.badRequest("the body is not valid JSON")
        }
    }
}

extension Response {
    /// A JSON response with dates in ISO 8601.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
