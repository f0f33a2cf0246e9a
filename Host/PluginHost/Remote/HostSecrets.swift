import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PluginSDK

/// The host's own key, and what it protects: remote plugins' install and enablement secrets, kept in the
/// store sealed with AES-GCM, and the SDK tokens handed to remotes, signed with HMAC-SHA256. Both keys
/// are derived from one 32-byte master key (HKDF), which comes from `PLUGIN_HOST_SECRET_KEY` or, by
/// default, the file `secret.key` in the data folder. Hosts sharing a database must share the key.
public struct HostSecrets: Sendable {
    let sealingKey: SymmetricKey
    let tokenKey: SymmetricKey

    public init(masterKey: SymmetricKey) {
        sealingKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data("plugin-host secrets at rest v1".utf8), outputByteCount: 32)
        tokenKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data("plugin-host sdk tokens v1".utf8), outputByteCount: 32)
    }

    /// The configured key (base64 of 32 bytes), or the one in `folder/secret.key`, made on first use
    /// with mode 0600.
    public static func load(configured: String?, folder: String) throws -> HostSecrets {
        if let configured {
            guard let data = Data(base64Encoded: configured.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw HostConfigurationError("PLUGIN_HOST_SECRET_KEY must be 32 bytes in base64 (make one with: head -c 32 /dev/urandom | base64)")
            }
            return HostSecrets(masterKey: SymmetricKey(data: data))
        }
        let path = URL(fileURLWithPath: folder).appendingPathComponent("secret.key").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Made only where none exists (O_EXCL, mode 0600 from the start): a key that exists but cannot
        // be read is an error, never replaced, since every sealed secret depends on it. Two hosts
        // starting together on one folder: one creates it, the other reads it.
        let key = SymmetricKey(size: .bits256)
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if descriptor >= 0 {
            let text = Array((key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n").utf8)
            let written = text.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            Glibc.close(descriptor)
            guard written == text.count else { throw HostConfigurationError("cannot write the host key to \(path)") }
            return HostSecrets(masterKey: key)
        }
        guard errno == EEXIST else { throw HostConfigurationError("cannot create the host key \(path): \(String(cString: strerror(errno)))") }
        for _ in 0..<50 {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw HostConfigurationError("cannot read the host key \(path); fix its permissions (secrets sealed with it cannot be read otherwise)")
            }
            // Another process may have created it a moment ago and not written it yet.
            if text.isEmpty { usleep(20_000); continue }
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw HostConfigurationError("\(path) does not hold 32 bytes in base64; restore it from a backup (secrets sealed with it cannot be read otherwise)")
            }
            return HostSecrets(masterKey: SymmetricKey(data: data))
        }
        throw HostConfigurationError("the host key \(path) stays empty; remove it if no secrets were sealed with it yet")
    }

    // MARK: Secrets at rest

    /// `v1.` and base64 of AES-GCM's nonce, ciphertext and tag; `purpose` is bound as associated data,
    /// so a sealed value cannot be moved to another key of the settings.
    func seal(_ secret: String, purpose: String) throws -> String {
        let box = try AES.GCM.seal(Data(secret.utf8), using: sealingKey, authenticating: Data(purpose.utf8))
        // `combined` is nil only for nonces other than AES-GCM's default 12 bytes, which `seal` uses.
        return "v1." + box.combined!.base64EncodedString()
    }

    func open(_ sealed: String, purpose: String) throws -> String {
        guard sealed.hasPrefix("v1."), let data = Data(base64Encoded: String(sealed.dropFirst(3))) else {
            throw HostConfigurationError("a sealed secret (\(purpose)) is malformed")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            return String(decoding: try AES.GCM.open(box, using: sealingKey, authenticating: Data(purpose.utf8)), as: UTF8.self)
        } catch {
            throw HostConfigurationError("a sealed secret (\(purpose)) cannot be opened with this host's key; hosts sharing a database must share PLUGIN_HOST_SECRET_KEY")
        }
    }

    // MARK: SDK tokens

    typealias TokenClaims = SDKToken.Claims

    /// A token for one call's SDK requests (``SDKToken``), signed with this host's token key.
    func mintToken(_ claims: TokenClaims) -> String {
        SDKToken.mint(claims, key: tokenKey)
    }

    func verifyToken(_ token: Substring, nowMilliseconds: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) throws(SDKToken.Problem) -> TokenClaims {
        try SDKToken.verify(token, key: tokenKey, nowMilliseconds: nowMilliseconds)
    }
}
