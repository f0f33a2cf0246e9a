import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Where the admin commands send their requests.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "URL of the host (or PLUGIN_HOST_URL).")
    var url: String?

    @Option(help: "API token (or PLUGIN_HOST_TOKEN).")
    var token: String?

    @Flag(help: "Print the API's JSON instead of a table.")
    var json = false

    func client() throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        guard let token = token ?? environment["PLUGIN_HOST_TOKEN"], !token.isEmpty else {
            throw ValidationError("no token: pass --token or set PLUGIN_HOST_TOKEN")
        }
        let base = url ?? environment["PLUGIN_HOST_URL"] ?? "http://127.0.0.1:8080"
        return AdminClient(baseURL: base.hasSuffix("/") ? String(base.dropLast()) : base, token: token)
    }
}

/// A small client of the host's admin API. Errors print the API's code and message and exit non-zero.
struct AdminClient {
    let baseURL: String
    let token: String

    func send(_ method: HTTPMethod, _ path: String, json body: (any Encodable)? = nil) async throws -> Data {
        try await send(method, path, body: try body.map { try JSONEncoder().encode($0) }, contentType: "application/json")
    }

    func send(_ method: HTTPMethod, _ path: String, body: Data?, contentType: String) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach the host at \(baseURL): \(error); is it running? (set PLUGIN_HOST_URL)")
        }
        let data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        guard (200..<300).contains(Int(response.status.code)) else {
            throw CLIError(Self.describeError(status: Int(response.status.code), data))
        }
        return data
    }

    private static func describeError(status: Int, _ data: Data) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let error = object["error"] as? [String: Any] else {
            return "HTTP \(status): \(String(decoding: data, as: UTF8.self))"
        }
        var text = "\(error["code"] ?? "HTTP_\(status)"): \(error["message"] ?? "")"
        for detail in (error["details"] as? [String]) ?? [] { text += "\n  - \(detail)" }
        if let id = error["requestId"] { text += "\n(request id \(id))" }
        return text
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) }
            .joined(separator: "   ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

/// Prints the API's JSON as it came, indented.
func printJSON(_ data: Data) {
    if let object = try? JSONSerialization.jsonObject(with: data),
       let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: pretty, as: UTF8.self))
    } else {
        print(String(decoding: data, as: UTF8.self))
    }
}

func decodeObject(_ data: Data) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
}

func text(_ value: Any?) -> String {
    switch value {
    case let list as [Any]: list.map { "\($0)" }.joined(separator: ",")
    case let value?: "\(value)"
    case nil: "-"
    }
}
