import Foundation
import HTTPTypes
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
            throw HostError.invalidInput("missing field \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(type, context) {
            throw HostError.invalidInput("field \(context.codingPath.map(\.stringValue).joined(separator: ".")) must be \(type)")
        } catch let DecodingError.valueNotFound(_, context) {
            throw HostError.invalidInput("field \(context.codingPath.map(\.stringValue).joined(separator: ".")) must not be null")
        } catch {
            throw HostError.invalidInput("the body is not valid JSON")
        }
    }
}

extension HTTPFields {
    /// The token of the request's one `Authorization: Bearer <token>` field: the scheme in any case
    /// (RFC 9110 §11.1), one or more spaces, then the token. `nil` when the field is missing, repeated,
    /// of another scheme, or holds no token. A scan, because the fields' subscript joins every value of
    /// a name into a new string.
    var bearerToken: Substring? {
        var found: String?
        for field in self where field.name == .authorization {
            guard found == nil else { return nil }
            found = field.value
        }
        guard let value = found else { return nil }
        let scheme = "bearer".utf8
        let bytes = value.utf8
        guard bytes.count > scheme.count,
              zip(bytes.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 }),
              bytes[bytes.index(bytes.startIndex, offsetBy: scheme.count)] == UInt8(ascii: " ")
        else { return nil }
        let token = value[value.utf8.index(bytes.startIndex, offsetBy: scheme.count)...].drop { $0 == " " }
        return token.isEmpty ? nil : token
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
