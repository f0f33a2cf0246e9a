import HTTPTypes
import Hummingbird

/// Resolves `Authorization: Bearer <token>` to a ``Principal``; 401 when absent or unknown.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let authenticator: Authenticator
    /// Until it has read its registry from the store (PostgreSQL not reached yet), the API answers 503
    /// `STORE_UNAVAILABLE` rather than as if nothing were installed.
    let runtime: PluginRuntime

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard runtime.isReady else { throw HostError.storeUnavailable }
        guard let token = request.headers.bearerToken, let principal = try await authenticator.principal(token: token)
        else { throw HostError.unauthenticated }
        // The context's logger adds token.id from the principal when it is used.
        var context = context
        context.principal = principal
        do {
            return try await next(request, context)
        } catch {
            // The error middleware holds the context as it was before this one: tell it who called.
            throw AuthenticatedFailure(underlying: error, principal: principal)
        }
    }
}

/// An error thrown while serving an authenticated request, with the principal that made it, so that
/// ``ErrorMiddleware`` (outside ``AuthMiddleware``) logs it with the caller's `token.id`.
struct AuthenticatedFailure: Error {
    var underlying: any Error
    var principal: Principal
}
