import Hummingbird

/// The host's HTTP responder: the router, with the plugin resource route matched ahead of it.
///
/// Every request to a plugin has a path eight components deep,
/// `/v1/workspaces/{ws}/plugins/{pluginId}/resources/...`, and resolving it in the router's trie
/// (Character by Character, generic code not specialised for us) cost more than anything else the
/// host does per request. A path of exactly that form, without empty components, is matched here on
/// its bytes and goes through the same middleware as the router's `/v1` routes (``HostMiddleware``, the
/// one list both take), then ``ResourceController``. Any other path, and any method the resource route
/// does not take, goes to the router, which serves the same route for the paths not taken here.
/// (The router would also record the endpoint path in the context; nothing in the host reads it.)
struct HostResponder: HTTPResponder {
    typealias Context = HostRequestContext
    let router: RouterResponder<HostRequestContext>
    let middleware: HostMiddleware
    let resources: ResourceController

    func respond(to request: Request, context: Context) async throws -> Response {
        guard ResourceController.methods.contains(request.method), let target = ResourceTarget(path: request.uri.path) else {
            return try await router.respond(to: request, context: context)
        }
        return try await middleware.respond(to: request, context: context) { request, context in
            try await resources.forward(request, context: context, target: target)
        }
    }
}

/// The parts of a plugin resource path: `/v1/workspaces/{ws}/plugins/{pluginId}/resources/{path}`.
struct ResourceTarget: Sendable {
    var workspaceID: String
    var pluginID: String
    /// Below `resources/`, without a leading slash.
    var path: String

    init(workspaceID: String, pluginID: String, path: String) {
        self.workspaceID = workspaceID
        self.pluginID = pluginID
        self.path = path
    }

    /// Matches `path` if it has exactly that form and no empty component (no `//`, no trailing `/`);
    /// those the router resolves.
    init?(path: String) {
        var path = path
        guard let target = path.withUTF8(Self.parse) else { return nil }
        self = target
    }

    private static let prefix = Array("/v1/workspaces/".utf8)
    private static let plugins = Array("plugins/".utf8)
    private static let resources = Array("resources/".utf8)

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> ResourceTarget? {
        let slash = UInt8(ascii: "/")
        var position = 0
        func literal(_ text: [UInt8]) -> Bool {
            guard bytes.count - position >= text.count, bytes[position..<position + text.count].elementsEqual(text) else { return false }
            position += text.count
            return true
        }
        func component() -> Range<Int>? {
            let start = position
            while position < bytes.count && bytes[position] != slash { position += 1 }
            guard position > start, position < bytes.count else { return nil }
            defer { position += 1 }
            return start..<position
        }
        guard literal(prefix), let workspace = component(), literal(plugins), let plugin = component(), literal(resources) else { return nil }
        let rest = position..<bytes.count
        guard !rest.isEmpty, bytes[rest.upperBound - 1] != slash else { return nil }
        for index in rest where bytes[index] == slash && bytes[index - 1] == slash { return nil }
        func text(_ range: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) }
        return ResourceTarget(workspaceID: text(workspace), pluginID: text(plugin), path: text(rest))
    }
}
