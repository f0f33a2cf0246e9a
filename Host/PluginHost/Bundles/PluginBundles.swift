import Crypto
import Foundation
import Logging

/// The ed25519 public keys whose bundles a host accepts (`serve --trusted-keys DIR`): each `*.pub` file
/// of the folder holds one key, base64 of its 32 raw bytes, as `plugin-host keys generate` writes it.
public struct TrustedKeys: Sendable {
    public let directory: String
    /// By key id (``PluginBundle/keyID(_:)``).
    public let keys: [String: Data]

    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    public static func load(directory: String) throws -> TrustedKeys {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".pub") }.sorted()
        } catch {
            throw Unreadable(description: "cannot read the trusted keys folder \(directory): \(error.localizedDescription)")
        }
        var keys: [String: Data] = [:]
        for name in names {
            let path = directory + "/" + name
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), let raw = PublicKeyFile.decode(text) else {
                throw Unreadable(description: "\(path) is not an ed25519 public key (base64 of 32 bytes, as plugin-host keys generate writes)")
            }
            keys[PluginBundle.keyID(raw)] = raw
        }
        guard !keys.isEmpty else { throw Unreadable(description: "the trusted keys folder \(directory) holds no *.pub key") }
        return TrustedKeys(directory: directory, keys: keys)
    }
}

/// The text of key files: base64 of the raw key on one line.
public enum PublicKeyFile {
    public static func decode(_ text: String) -> Data? {
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
              (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else { return nil }
        return raw
    }

    public static func encode(_ raw: Data) -> String { raw.base64EncodedString() + "\n" }
}

/// Plugin bundles on this host: checked before anything is written, kept in the store by the SHA-256
/// of their file (so every host sharing the database has them), and unpacked into a cache folder of
/// the host's own, from which their libraries are loaded. Every load checks the bundle again: its
/// file against its name, its signature against the trusted keys, and (through the manifest's pinned
/// `sha256`) the library file against the bundle.
final class PluginBundles: Sendable {
    let store: any HostStore
    /// `<data>/bundles`: `<sha256>.bundle`, and `<sha256>/<library>`.
    let folder: String
    let trustedKeys: TrustedKeys?

    init(store: any HostStore, folder: String, trustedKeys: TrustedKeys?) {
        self.store = store
        self.folder = folder
        self.trustedKeys = trustedKeys
    }

    /// A bundle that passed every check.
    struct Verified: Sendable {
        var bundle: PluginBundle
        var bytes: Data
        /// Of the whole file: the bundle's name in the store and the cache.
        var sha256: String
        var manifestText: String
    }

    /// Decodes a bundle and checks its checksums and its signature against this host's policy.
    func verify(_ bytes: Data) throws(HostError) -> Verified {
        let bundle: PluginBundle
        do {
            bundle = try PluginBundle.decode(bytes)
        } catch {
            throw .invalidBundle(error.description)
        }
        try checkSignature(bundle)
        guard let text = String(data: bundle.manifest, encoding: .utf8) else { throw .invalidBundle("its manifest is not UTF-8 text") }
        return Verified(bundle: bundle, bytes: bytes, sha256: SHA256.hash(data: bytes).hexString, manifestText: text)
    }

    /// Without trusted keys, a signature is checked if there is one; with them, there must be one, by
    /// one of them.
    func checkSignature(_ bundle: PluginBundle) throws(HostError) {
        if let signature = bundle.signature {
            guard bundle.signatureIsValid else {
                throw .untrustedBundle("its signature by key \(signature.keyID) does not match its contents: it was changed after it was signed")
            }
            if let trustedKeys, trustedKeys.keys[signature.keyID] != signature.publicKey {
                throw .untrustedBundle("it is signed by key \(signature.keyID), which is not among this host's trusted keys (\(trustedKeys.directory))")
            }
        } else if let trustedKeys {
            throw .untrustedBundle(
                "it is not signed, and this host accepts only bundles signed by its trusted keys (\(trustedKeys.directory)); sign it with plugin-host pack --sign KEY")
        }
    }

    /// This host refuses anything but signed bundles (it has trusted keys).
    var requiresSignatures: Bool { trustedKeys != nil }

    /// Writes the bundle's library into the cache, unless a file with its bytes is there already, and
    /// answers its path; `nil` for a bundle without a library.
    func unpack(_ verified: Verified) throws -> String? {
        guard let library = verified.bundle.library else { return nil }
        let directory = folder + "/" + verified.sha256
        let path = directory + "/" + library.name
        if let present = FileManager.default.contents(atPath: path), present == library.bytes { return path }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.writeAtomically(library.bytes, to: path)
        return path
    }

    /// The record as this host loads it: for a bundle, its copy in the cache (fetched from the store if
    /// the cache lacks it), checked again, with the library's path and checksum in the manifest.
    func localize(_ record: InstalledPluginRecord) async throws -> InstalledPluginRecord {
        guard let sha256 = record.bundle else {
            // Installed from a manifest (before this host had trusted keys, or by a host without them).
            if let trustedKeys {
                throw HostError.untrustedBundle(
                    "plugin \(record.id) was installed from a manifest, not a signed bundle, and this host loads only bundles signed by its trusted keys (\(trustedKeys.directory)); install it again as a signed bundle")
            }
            return record
        }
        let file = folder + "/" + sha256 + ".bundle"
        let bytes: Data
        if let cached = FileManager.default.contents(atPath: file) {
            bytes = cached
            let found = SHA256.hash(data: bytes).hexString
            guard found == sha256 else {
                throw HostError.invalidBundle(
                    "this host's copy of bundle \(sha256) (\(file)) was changed on disk: its SHA-256 is now \(found). Delete it and the folder beside it, and the host fetches the bundle from its store again")
            }
        } else {
            guard let stored = try await store.bundle(sha256: sha256) else {
                throw HostError.invalidBundle("bundle \(sha256) of plugin \(record.id) is not in the store")
            }
            guard SHA256.hash(data: stored).hexString == sha256 else { throw HostError.invalidBundle("the store's copy of bundle \(sha256) does not match its name") }
            bytes = stored
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Self.writeAtomically(bytes, to: file)
        }
        let verified = try verify(bytes)
        var record = record
        if let library = verified.bundle.library {
            let path = folder + "/" + sha256 + "/" + library.name
            if !FileManager.default.fileExists(atPath: path) { _ = try unpack(verified) }
            record.manifest.runtime.resolvedPath = path
            // Checked against the file at every load (PluginLauncher), so a library changed on disk is refused.
            record.manifest.runtime.sha256 = verified.bundle.librarySHA256
        }
        return record
    }

    /// Keeps a verified bundle in the store and in the cache, before the plugin that names it.
    func keep(_ verified: Verified) async throws {
        try await store.putBundle(sha256: verified.sha256, bytes: verified.bytes)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = folder + "/" + verified.sha256 + ".bundle"
        if !FileManager.default.fileExists(atPath: file) { try Self.writeAtomically(verified.bytes, to: file) }
    }

    /// Writes beside the target and renames, so a reader sees the old file or the whole new one.
    private static func writeAtomically(_ data: Data, to path: String) throws {
        let temporary = path + ".\(UUID().uuidString).partial"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o644]) else {
            throw CacheUnwritable(description: "cannot write \(temporary)")
        }
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw CacheUnwritable(description: "cannot write \(path): \(reason)")
        }
    }

    /// The host's cache folder cannot be written: the host's own fault, not the bundle's.
    struct CacheUnwritable: Error, CustomStringConvertible {
        var description: String
    }
}
