import Crypto
import Foundation

/// The bearer token of one remote call's SDK requests: what it allows (one plugin in one workspace,
/// with the grants of one call, until it expires) and the host's signature over it.
///
/// `pht1.` base64url(claims JSON) `.` base64url(HMAC-SHA256 of everything before the second dot).
/// Verifying reads only bytes the token carries: any text gives a claim set or a ``Problem``.
package enum SDKToken {
    package struct Claims: Sendable, Codable, Equatable {
        package var tenant: String
        package var workspace: String
        package var plugin: String
        package var grants: [String]
        package var subject: String
        package var role: String
        /// Unix time in milliseconds.
        package var expires: Int64

        package init(tenant: String, workspace: String, plugin: String, grants: [String], subject: String, role: String, expires: Int64) {
            self.tenant = tenant
            self.workspace = workspace
            self.plugin = plugin
            self.grants = grants
            self.subject = subject
            self.role = role
            self.expires = expires
        }
    }

    package enum Problem: Error, Equatable {
        case malformed
        case expired
    }

    package static func mint(_ claims: Claims, key: SymmetricKey) -> String {
        var json = JSONText()
        json.open()
        json.member("expires", claims.expires)
        json.member("grants", claims.grants)
        json.member("plugin", claims.plugin)
        json.member("role", claims.role)
        json.member("subject", claims.subject)
        json.member("tenant", claims.tenant)
        json.member("workspace", claims.workspace)
        json.close()
        return sign(payload: prefix + Base64URL.encode(json.bytes), key: key)
    }

    /// `payload` `.` base64url(HMAC-SHA256 of `payload`).
    package static func sign(payload: String, key: SymmetricKey) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(payload.utf8), using: key)
        return payload + "." + Base64URL.encode(Data(mac))
    }

    /// The claims of a token this key signed, if it has not expired at `nowMilliseconds`.
    package static func verify(_ token: Substring, key: SymmetricKey, nowMilliseconds: Int64) throws(Problem) -> Claims {
        guard token.hasPrefix(prefix), let dot = token.lastIndex(of: "."),
              case let claimsStart = token.index(token.startIndex, offsetBy: prefix.count), dot >= claimsStart,
              let mac = Base64URL.decode(token[token.index(after: dot)...]),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(token[..<dot].utf8), using: key),
              let claimsData = Base64URL.decode(token[claimsStart..<dot]),
              let claims = try? JSONDecoder().decode(Claims.self, from: claimsData)
        else { throw .malformed }
        guard claims.expires > nowMilliseconds else { throw .expired }
        return claims
    }

    private static let prefix = "pht1."
}
