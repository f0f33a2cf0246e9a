import Hummingbird

/// The middleware of the host's routes, outermost first, as one list: ``ErrorMiddleware`` on every
/// route, then ``AuthMiddleware`` on `/v1`. The router takes its middleware from here, and the fast
/// resource path (``HostResponder``) is wrapped in the same list, so no route can skip one that is
/// added here.
struct HostMiddleware: Sendable {
    /// Every route's, the router's 404 included.
    let everyRoute: [any MiddlewareProtocol<Request, Response, HostRequestContext>]
    /// The `/v1` routes', inside ``everyRoute``.
    let v1: [any MiddlewareProtocol<Request, Response, HostRequestContext>]
    /// Both, in order: what a `/v1` request meets.
    private let v1Chain: [any MiddlewareProtocol<Request, Response, HostRequestContext>]

    init(everyRoute: [any MiddlewareProtocol<Request, Response, HostRequestContext>], v1: [any MiddlewareProtocol<Request, Response, HostRequestContext>]) {
        self.everyRoute = everyRoute
        self.v1 = v1
        self.v1Chain = everyRoute + v1
    }

    /// Adds the middleware to `router` and returns the `/v1` group, to which the API's routes are added.
    func install(on router: Router<HostRequestContext>) -> RouterGroup<HostRequestContext> {
        for middleware in everyRoute { router.add(middleware: middleware) }
        let group = router.group("v1")
        for middleware in v1 { group.add(middleware: middleware) }
        return group
    }

    /// `handler` called as a `/v1` route: through every middleware of the list, in its order.
    func respond(
        to request: Request, context: HostRequestContext, asV1Route handler: (Request, HostRequestContext) async throws -> Response
    ) async throws -> Response {
        try await Self.respond(to: request, context: context, through: v1Chain[...], handler)
    }

    private static func respond(
        to request: Request, context: HostRequestContext, through middleware: ArraySlice<any MiddlewareProtocol<Request, Response, HostRequestContext>>,
        _ handler: (Request, HostRequestContext) async throws -> Response
    ) async throws -> Response {
        guard let first = middleware.first else { return try await handler(request, context) }
        return try await first.handle(request, context: context) { request, context in
            try await respond(to: request, context: context, through: middleware.dropFirst(), handler)
        }
    }
}
