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
        }

        public struct SDK: Sendable, Codable, Equatable {
            /// The host's base URL for `/sdk/v1/...`.
            public var url: String
            /// The bearer token for this call's SDK requests.
            public var token: String
            /// Unix seconds after which ``token`` is refused.
            public var expires: Int64
        }

        public var v: Int = 1
        public var call: CallKind
        public var tenant: String
        public var workspace: String
        public var plugin: String
        public var requestId: String?
        public var caller: CallerInfo
        public var grants: [String]
        public var config: [String: JSONValue]
        public var sdk: SDK
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
    static func mac(secret: String, callID: String, expires: Int64, method: String, target: String, contentHash: String, context: String) -> String {
        let text = [algorithm, callID, String(expires), method, target, contentHash, context].joined(separator: "\n")
        let code = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Data(code).hexString
    }

    public static func encode(_ context: Context) throws -> String {
        try Base64URL.encode(contextEncoder.encode(context))
    }

    public static func decode(_ header: String) -> Context? {
        guard let data = Base64URL.decode(header) else { return nil }
        return try? JSONDecoder().decode(Context.self, from: data)
    }

    private static let contextEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// 128 random bits in hex.
    public static func newCallID() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(format: "%016llx%016llx", generator.next() as UInt64, generator.next() as UInt64)
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

/// Base64url without padding (RFC 4648 §5).
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        var text = Data(data).base64EncodedString()
        text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    public static func decode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64.append("=") }
        return Data(base64Encoded: base64)
    }
}
