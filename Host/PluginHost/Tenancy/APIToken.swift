import Crypto
import Foundation

/// API token secrets: random, shown once, stored as SHA-256 only.
///
/// A token is `ph_<id>_<secret>`; the id is public (it names the token in listings), the secret is
/// 32 random bytes. A plain SHA-256 suffices because the secret has 256 bits of entropy: there is
/// nothing to guess, so a slow password hash would only cost every request.
public enum APIToken {
    public struct Minted: Sendable {
        public var token: String
        public var id: String
        public var secretHash: String
    }

    public static func mint() -> Minted {
        // An id is typed in commands (`tokens revoke ID`), where a leading `-` reads as an option.
        var id = randomString(bytes: 6)
        while id.hasPrefix("-") { id = randomString(bytes: 6) }
        let token = "ph_\(id)_\(randomString(bytes: 32))"
        return Minted(token: token, id: id, secretHash: hash(token))
    }

    public static func hash(_ token: String) -> String {
        digest(token[...]).hexString
    }

    /// The SHA-256 of the token's UTF-8 bytes, read in place.
    static func digest(_ token: Substring) -> SHA256Digest {
        var token = token
        var hasher = SHA256()
        token.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        return hasher.finalize()
    }

    private static func randomString(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
