import Foundation

/// An HTTP-style request routed to a plugin.
public struct PluginRequest: Sendable {
    /// The HTTP method in upper case, for example `POST`.
    public var method: String
    /// The path below `resources/`, without a leading slash, for example `notes/42`.
    public var path: String
    /// The decoded query parameters; a repeated name keeps every value in order.
    public var query: [String: [String]]
    /// The request headers, names in lower case.
    public var headers: [String: String]
    /// The body as it came.
    public var body: Data
    /// The host's id for this request, also in the `X-Request-ID` response header.
    public var requestID: String

    /// Creates a request.
    public init(
        method: String, path: String, query: [String: [String]] = [:], headers: [String: String] = [:],
        body: Data = Data(), requestID: String = ""
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.requestID = requestID
    }

    /// The first value of a query parameter.
    public func queryValue(_ name: String) -> String? { query[name]?.first }

    /// Decodes the body as JSON, throwing ``PluginError/badRequest(_:)`` with a readable reason if it is not.
    public func decodeJSON<Body: Decodable>(_ type: Body.Type) throws -> Body {
        do {
            return try PluginJSON.decoder().decode(Body.self, from: body)
        } catch DecodingError.keyNotFound(let key, let context) {
            throw PluginError.badRequest("missing field \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))")
        } catch DecodingError.typeMismatch(let type, let context) {
            throw PluginError.badRequest("field \(context.codingPath.map(\.stringValue).joined(separator: ".")) must be \(type)")
        } catch {
            throw PluginError.badRequest("the body is not valid JSON")
        }
    }
}

/// A plugin's answer to a ``PluginRequest``.
public struct PluginResponse: Sendable {
    /// The HTTP status, for example 200.
    public var status: Int
    /// Response headers.
    public var headers: [String: String]
    /// The body.
    public var body: Data

    /// Creates a response.
    public init(status: Int = 200, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response with `Content-Type: application/json`.
    public static func json<Body: Encodable>(_ value: Body, status: Int = 200) throws -> PluginResponse {
        PluginResponse(status: status, headers: ["content-type": "application/json"], body: try PluginJSON.encoder().encode(value))
    }
}

/// The JSON coding the SDK's helpers use: ISO 8601 dates, sorted keys.
public enum PluginJSON {
    /// An encoder with ISO 8601 dates and sorted keys.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    /// A decoder with ISO 8601 dates.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
