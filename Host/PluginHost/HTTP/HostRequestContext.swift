import Hummingbird
import Logging
import Synchronization

/// Per-request state: the request id every log line and error carries, and the authenticated principal.
public struct HostRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String
    public var principal: Principal?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = Self.makeRequestID()
        self.principal = nil
        self.logger[metadataKey: "request.id"] = "\(requestID)"
    }

    /// The principal, which the auth middleware has set on every `/v1` route.
    func requirePrincipal() throws -> Principal {
        guard let principal else { throw HostError.unauthorized() }
        return principal
    }

    /// A random per-process prefix and a counter: unique, and no system call per request.
    private static func makeRequestID() -> String {
        prefix + String(counter.add(1, ordering: .relaxed).newValue, radix: 36)
    }

    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt32, radix: 36) + "-"
    }()
    private static let counter = Atomic<UInt64>(0)
}
