import Hummingbird
import Logging
import Synchronization

/// Per-request state: the request id every log line and error carries, and the authenticated principal.
public struct HostRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String
    public var principal: Principal?
    /// Hummingbird's logger for the request, as the server made it. Kept here because the core
    /// context's copy is internal to Hummingbird: reading it through the protocol's `logger` would call
    /// the getter below again.
    private var baseLogger: Logger

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = Self.makeRequestID()
        self.principal = nil
        self.baseLogger = source.logger
    }

    /// The request's logger: Hummingbird's, with `request.id` and, once authenticated, `token.id` in
    /// its metadata. They are added when the logger is asked for, that is when something is about to
    /// be logged, not on every request: a metadata write makes the log handler rebuild its metadata
    /// (the stream handler renders it to text on each write), which cost more than routing the request.
    public var logger: Logger {
        get {
            var logger = baseLogger
            logger[metadataKey: "request.id"] = "\(requestID)"
            if let principal { logger[metadataKey: "token.id"] = "\(principal.tokenID)" }
            return logger
        }
        set { baseLogger = newValue }
    }

    /// The level of the request's logger, read without building its metadata.
    var logLevel: Logger.Level { baseLogger.logLevel }

    /// The principal, which the auth middleware has set on every `/v1` route.
    func requirePrincipal() throws -> Principal {
        guard let principal else { throw HostError.unauthenticated }
        return principal
    }

    /// A random per-process prefix and a counter in base 36: unique, and no system call per request.
    /// The digits are written into a stack buffer; `String(_:radix:)` cost more than the rest of the
    /// context's setup.
    static func makeRequestID() -> String {
        var value = counter.add(1, ordering: .relaxed).newValue
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 13) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = base36[Int(value % 36)]
                value /= 36
            } while value > 0
            return prefix + String(decoding: UnsafeBufferPointer(rebasing: digits[start...]), as: UTF8.self)
        }
    }

    private static let base36 = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt32, radix: 36) + "-"
    }()
    private static let counter = Atomic<UInt64>(0)
}
