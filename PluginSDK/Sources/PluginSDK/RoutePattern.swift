/// A route's path as a manifest declares it (`notes/{id}`, `files/*`), matched against a request's path.
///
/// Segments are separated by `/`, and empty segments are ignored on both sides. `{name}` matches any one
/// segment and records it under `name`; a last segment `*` matches the rest of the path (none or more
/// segments), recorded under `*`; any other segment matches itself. The host routes requests by the
/// same rules.
public struct RoutePattern: Sendable, Hashable {
    enum Segment: Sendable, Hashable {
        case literal(Substring)
        case parameter(String)
        case rest
    }

    /// The pattern as written.
    public let pattern: String
    let segments: [Segment]

    public init(_ pattern: String) {
        self.pattern = pattern
        let parts = pattern.split(separator: "/")
        segments = parts.enumerated().map { index, part in
            if part == "*" && index == parts.count - 1 { return .rest }
            if part.count >= 2, part.hasPrefix("{"), part.hasSuffix("}") { return .parameter(String(part.dropFirst().dropLast())) }
            return .literal(part)
        }
    }

    /// The values of the pattern's `{name}` segments (and `*`) in `path`, or `nil` if it does not match.
    public func match(_ path: String) -> [String: String]? {
        let parts = path.split(separator: "/")
        var values: [String: String] = [:]
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .rest:
                values["*"] = parts.dropFirst(index).joined(separator: "/")
                return values
            case .parameter(let name):
                guard index < parts.count else { return nil }
                values[name] = String(parts[index])
            case .literal(let text):
                guard index < parts.count, parts[index] == text else { return nil }
            }
        }
        return parts.count == segments.count ? values : nil
    }
}

extension PluginRequest {
    /// The header in which the host names the manifest route a request matched (`notes/{id}`), when the
    /// route has `{name}` or `*` segments; a caller's header of that name never reaches the plugin.
    public static let routeHeader = "x-plugin-host-route"

    /// The values of the `{name}` segments of the manifest route this request matched, by name
    /// (`request.parameters["id"]` for `notes/42` under `notes/{id}`); empty for a plugin without routes.
    public var parameters: [String: String] {
        guard let route = headers[Self.routeHeader] else { return [:] }
        return RoutePattern(route).match(path) ?? [:]
    }
}
