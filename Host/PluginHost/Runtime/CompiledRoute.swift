import PluginSDK

/// A manifest route split into segments once, so matching a request allocates nothing per route.
struct CompiledRoute: Sendable {
    enum Segment: Sendable, Equatable {
        /// The segment's UTF-8 bytes.
        case literal([UInt8])
        case parameter
        case rest
    }

    let method: String
    let segments: [Segment]
    let minimumRole: CallerRole
    /// For a route with `{name}` or `*` segments, which the plugin reads with `request.parameters`, its
    /// path as the manifest declares it, handed to the plugin in ``PluginRequest/routeHeader``.
    let parameterized: String?

    /// The same rules as the SDK's ``RoutePattern``, with which a plugin reads the `{name}` segments.
    init(_ route: PluginManifest.Route) {
        method = route.method
        minimumRole = route.minimumRole
        let parts = route.path.split(separator: "/")
        segments = parts.enumerated().map { index, part in
            if part == "*" && index == parts.count - 1 { return .rest }
            if part.hasPrefix("{") && part.hasSuffix("}") { return .parameter }
            return .literal(Array(part.utf8))
        }
        parameterized = segments.contains { $0 == .parameter || $0 == .rest } ? route.path : nil
    }

    /// Whether a request for `path` (below `resources/`, empty segments ignored) takes this route.
    /// Compares the path's UTF-8 bytes in place: matching allocates nothing.
    func matches(method: String, path: String) -> Bool {
        guard self.method == "*" || self.method == method else { return false }
        var path = path
        return path.withUTF8(matches(path:))
    }

    private func matches(path: UnsafeBufferPointer<UInt8>) -> Bool {
        var position = 0
        for segment in segments {
            if case .rest = segment { return true }
            guard let part = Self.nextSegment(of: path, from: &position) else { return false }
            if case .literal(let bytes) = segment, !part.elementsEqual(bytes) { return false }
        }
        return Self.nextSegment(of: path, from: &position) == nil
    }

    /// The next non-empty segment of `path` at or after `position`, which is moved past it.
    private static func nextSegment(of path: UnsafeBufferPointer<UInt8>, from position: inout Int) -> Slice<UnsafeBufferPointer<UInt8>>? {
        let slash = UInt8(ascii: "/")
        while position < path.count && path[position] == slash { position += 1 }
        guard position < path.count else { return nil }
        let start = position
        while position < path.count && path[position] != slash { position += 1 }
        return path[start..<position]
    }
}
