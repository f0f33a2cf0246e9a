import Crypto
import Foundation
import PluginSDK

/// The signed envelope of a host → remote call (docs/remote-protocol.md): its headers, the context it
/// carries, and how both sides make and check the signature. The host signs with it; `serve-plugin`
/// verifies with it.
public enum RemoteEnvelope {
    public static let callIDHeader = "x-plugin-host-call-id"
    public static let expiresHeader = "x-plugin-host-expires"
    public static let contentHashHeader = "x-plugin-host-content-sha256"
    public static let contextHeader = "x-plugin-host-context"
    public static let signatureHeader = "x-plugin-host-signature"
    /// Set only by the protocol layer of a remote on a refused call, with one of ``Refusal/Code``.
    public static let errorHeader = "x-plugin-host-error"

    static let algorithm = "PH1-HMAC-SHA256"
    /// The remote refuses an expiry further ahead than this; it bounds how long call ids are remembered.
    public static let maximumLifetime: Int64 = 600
    /// The largest config (compact JSON) a remote plugin can be enabled with. It travels, base64url
    /// encoded (4/3 of its size), in the context header of every call, next to the caller, grants and
    /// SDK token (about 0.5 to 1 KiB more). 4 KiB keeps that header under 8 KiB, the default limit of a
    /// header line in nginx and Apache; Python's `http.server` and NIO allow more.
    public static let maximumConfigBytes = 4 * 1024

    /// The size of `config` as the context carries it, before base64url.
    package static func configSize(_ config: [String: JSONValue]) -> Int {
        var json = JSONText()
        json.object(config)
        return json.bytes.count
    }

    /// What a call is about; each kind has its own path on the remote.
    public enum CallKind: String, Sendable, Codable {
        case request, event, enabled, disabled

        /// The path of a lifecycle or event call; requests go to `/resources/{path}`.
        public var path: String { "/plugin-host/v1/\(rawValue)" }
    }

    /// The context of one call, sent as base64url JSON in `X-Plugin-Host-Context` and covered by the
    /// signature.
    public struct Context: Sendable, Codable, Equatable {
        public struct CallerInfo: Sendable, Codable, Equatable {
            public var subject: String
            public var role: String

            public init(subject: String, role: String) {
                self.subject = subject
                self.role = role
            }
        }

        public struct SDK: Sendable, Codable, Equatable {
            /// The host's base URL for `/sdk/v1/...`.
            public var url: String
            /// The bearer token for this call's SDK requests.
            public var token: String
            /// Unix seconds after which ``token`` is refused.
            public var expires: Int64

            public init(url: String, token: String, expires: Int64) {
                self.url = url
                self.token = token
                self.expires = expires
            }
        }

        public var v: Int = 1
        public var call: CallKind
        public var tenant: String
        public var workspace: String
        public var plugin: String
        public var requestId: String?
        /// For a request, the path of the manifest route it matched (`notes/{id}`), if the plugin has routes.
        public var route: String?
        public var caller: CallerInfo
        public var grants: [String]
        public var config: [String: JSONValue]
        public var sdk: SDK

        public init(
            call: CallKind, tenant: String, workspace: String, plugin: String, requestId: String?, caller: CallerInfo, grants: [String],
            config: [String: JSONValue], sdk: SDK, route: String? = nil
        ) {
            self.route = route
            self.call = call
            self.tenant = tenant
            self.workspace = workspace
            self.plugin = plugin
            self.requestId = requestId
            self.caller = caller
            self.grants = grants
            self.config = config
            self.sdk = sdk
        }
    }

    /// A protocol-level refusal by the remote: 401 with `X-Plugin-Host-Error`.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Code: String, Sendable {
            case missingSignature = "MISSING_SIGNATURE"
            case badContext = "BAD_CONTEXT"
            case expired = "EXPIRED"
            case contentMismatch = "CONTENT_MISMATCH"
            case unknownEnablement = "UNKNOWN_ENABLEMENT"
            case badSignature = "BAD_SIGNATURE"
            case replayed = "REPLAYED"
        }

        public var code: Code
        public var message: String

        public init(_ code: Code, _ message: String) {
            self.code = code
            self.message = message
        }

        public var description: String { "\(code.rawValue): \(message)" }
    }

    /// The envelope headers of one call, in the order the doc lists them.
    public struct Headers: Sendable {
        public var callID: String
        public var expires: Int64
        public var contentHash: String
        public var context: String
        public var signature: String

        public var fields: [(String, String)] {
            [(RemoteEnvelope.callIDHeader, callID), (RemoteEnvelope.expiresHeader, String(expires)), (RemoteEnvelope.contentHashHeader, contentHash),
             (RemoteEnvelope.contextHeader, context), (RemoteEnvelope.signatureHeader, signature)]
        }
    }

    /// Signs a call: `target` is the path and `?query` exactly as they go on the request line.
    public static func sign(
        secret: String, context: Context, method: String, target: String, body: some DataProtocol, expires: Int64, callID: String = newCallID()
    ) throws -> Headers {
        let encodedContext = try encode(context)
        let contentHash = SHA256.hash(data: body).hexString
        let signature = "v1=" + mac(secret: secret, callID: callID, expires: expires, method: method, target: target, contentHash: contentHash, context: encodedContext)
        return Headers(callID: callID, expires: expires, contentHash: contentHash, context: encodedContext, signature: signature)
    }

    /// The HMAC-SHA256 of the string to sign, in lowercase hex.
    package static func mac(secret: String, callID: String, expires: Int64, method: String, target: String, contentHash: String, context: String) -> String {
        let text = [algorithm, callID, String(expires), method, target, contentHash, context].joined(separator: "\n")
        let code = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Data(code).hexString
    }

    /// The context as the header carries it: compact JSON with sorted keys, in base64url.
    public static func encode(_ context: Context) throws -> String {
        var json = JSONText()
        json.open()
        json.member("call", context.call.rawValue)
        json.key("caller")
        json.open()
        json.member("role", context.caller.role)
        json.member("subject", context.caller.subject)
        json.close()
        json.key("config")
        json.object(context.config)
        json.member("grants", context.grants)
        json.member("plugin", context.plugin)
        if let requestID = context.requestId { json.member("requestId", requestID) }
        if let route = context.route { json.member("route", route) }
        json.key("sdk")
        json.open()
        json.member("expires", context.sdk.expires)
        json.member("token", context.sdk.token)
        json.member("url", context.sdk.url)
        json.close()
        json.member("tenant", context.tenant)
        json.member("v", Int64(context.v))
        json.member("workspace", context.workspace)
        json.close()
        return Base64URL.encode(json.bytes)
    }

    public static func decode(_ header: String) -> Context? {
        guard let data = Base64URL.decode(header) else { return nil }
        return try? JSONDecoder().decode(Context.self, from: data)
    }

    /// 128 random bits in hex.
    public static func newCallID() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0..<2 { withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) } }
        return bytes.hexString
    }

    /// Checks a received call, in the doc's order, and returns its context. `secretFor` answers the
    /// signing secret of a call's kind and workspace (the install secret for `enabled`), `nil` when none
    /// is known; `remember` records the call id until its expiry and answers false if it was seen.
    public static func verify(
        method: String, target: String, headers: (String) -> String?, body: some DataProtocol, expectedPlugin: String, expectedCall: CallKind,
        now: Int64 = Int64(Date().timeIntervalSince1970), secretFor: (CallKind, String) -> String?, remember: (String, Int64) -> Bool
    ) throws(Refusal) -> Context {
        guard let callID = headers(callIDHeader), let expiresText = headers(expiresHeader), let contentHash = headers(contentHashHeader),
              let contextText = headers(contextHeader), let signature = headers(signatureHeader)
        else { throw Refusal(.missingSignature, "the call lacks the X-Plugin-Host-* envelope headers") }
        guard let context = decode(contextText), context.v == 1 else {
            throw Refusal(.badContext, "X-Plugin-Host-Context is not base64url JSON of a version 1 call context")
        }
        guard let expires = Int64(expiresText) else { throw Refusal(.expired, "X-Plugin-Host-Expires is not a Unix time in seconds") }
        guard expires >= now else { throw Refusal(.expired, "the call expired at \(expires); it is now \(now)") }
        guard expires <= now + maximumLifetime else { throw Refusal(.expired, "the call expires more than \(maximumLifetime) s ahead; check the clocks") }
        guard SHA256.hash(data: body).hexString == contentHash else {
            throw Refusal(.contentMismatch, "the body's SHA-256 differs from X-Plugin-Host-Content-Sha256")
        }
        guard let secret = secretFor(expectedCall, context.workspace) else {
            throw expectedCall == .enabled
                ? Refusal(.badSignature, "no install secret is configured on this remote")
                : Refusal(.unknownEnablement, "no enablement secret is known for workspace \(context.workspace)")
        }
        let expected = "v1=" + mac(secret: secret, callID: callID, expires: expires, method: method, target: target, contentHash: contentHash, context: contextText)
        guard constantTimeEquals(expected, signature) else { throw Refusal(.badSignature, "the signature does not match") }
        guard context.plugin == expectedPlugin, context.call == expectedCall else {
            throw Refusal(.badContext, "the call is for \(context.plugin) \(context.call.rawValue), this remote serves \(expectedPlugin) and the path means \(expectedCall.rawValue)")
        }
        guard remember(callID, expires) else { throw Refusal(.replayed, "call \(callID) was already received") }
        return context
    }

    static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8), right = Array(rhs.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }

    /// A new install or enablement secret: `phk_` and 32 random bytes in base64url.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return "phk_" + Base64URL.encode(Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }))
    }
}
