import Crypto
import Foundation

/// A plugin bundle: one file holding a plugin's manifest, its library (none for a remote plugin), the
/// SHA-256 of each, and optionally an ed25519 signature over them (docs/bundles.md).
///
///     "PHBUNDLE"  8 bytes
///     version     u16             1
///     manifest    u32 count, bytes (the manifest's text, YAML or JSON)
///     library     u16 count, bytes (its file name; empty for none), u64 count, bytes
///     checksums   32 bytes (SHA-256 of the manifest), 32 bytes (of the library; zeros for none)
///     signature   u8 0 (none), or 1 and a 32-byte ed25519 public key and a 64-byte signature
///
/// Integers are little-endian. The signature is over ``signedText``, which names both checksums, so
/// it covers every byte that matters. A bundle is known by the SHA-256 of its whole file.
///
/// Decoding never traps: a count past the end, a bad checksum, a name that could leave the folder it is
/// written to or trailing bytes are a ``Malformed`` error naming the part.
public struct PluginBundle: Sendable, Equatable {
    public static let magic = Array("PHBUNDLE".utf8)
    public static let version: UInt16 = 1
    /// The largest bundle anything reads: a library above it is no plugin.
    public static let maximumBytes = 256 << 20

    public var manifest: Data
    /// The library's file name and bytes; `nil` for a remote plugin.
    public var library: (name: String, bytes: Data)?
    public var signature: Signature?

    public struct Signature: Sendable, Equatable {
        /// The raw 32-byte ed25519 public key.
        public var publicKey: Data
        public var signature: Data

        /// The first 8 bytes of the key's SHA-256, in hex: how messages and key files name a key.
        public var keyID: String { PluginBundle.keyID(publicKey) }
    }

    public struct Malformed: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public init(manifest: Data, library: (name: String, bytes: Data)?, signature: Signature? = nil) {
        self.manifest = manifest
        self.library = library
        self.signature = signature
    }

    public static func == (lhs: PluginBundle, rhs: PluginBundle) -> Bool {
        lhs.manifest == rhs.manifest && lhs.library?.name == rhs.library?.name && lhs.library?.bytes == rhs.library?.bytes && lhs.signature == rhs.signature
    }

    public var manifestSHA256: String { SHA256.hash(data: manifest).hexString }
    public var librarySHA256: String? { library.map { SHA256.hash(data: $0.bytes).hexString } }

    /// What a signature signs: the format, and the checksums of the parts.
    public var signedText: Data {
        Data("plugin-host bundle 1\nmanifest \(manifestSHA256)\nlibrary \(library?.name ?? "-") \(librarySHA256 ?? "-")\n".utf8)
    }

    public static func keyID(_ publicKey: Data) -> String {
        String(SHA256.hash(data: publicKey).hexString.prefix(16))
    }

    /// Signs the bundle with `key`, replacing any signature it had.
    public mutating func sign(with key: Curve25519.Signing.PrivateKey) throws {
        signature = Signature(publicKey: key.publicKey.rawRepresentation, signature: try key.signature(for: signedText))
    }

    /// Whether the signature is the named key's over this bundle's contents.
    public var signatureIsValid: Bool {
        guard let signature, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: signature.publicKey) else { return false }
        return key.isValidSignature(signature.signature, for: signedText)
    }

    // MARK: Encoding

    public func encoded() -> Data {
        var out = Data(Self.magic)
        func integer<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        integer(Self.version)
        integer(UInt32(manifest.count))
        out.append(manifest)
        let name = Data((library?.name ?? "").utf8)
        integer(UInt16(name.count))
        out.append(name)
        integer(UInt64(library?.bytes.count ?? 0))
        if let library { out.append(library.bytes) }
        out.append(contentsOf: SHA256.hash(data: manifest))
        if let library { out.append(contentsOf: SHA256.hash(data: library.bytes)) } else { out.append(Data(count: 32)) }
        if let signature {
            out.append(1)
            out.append(signature.publicKey)
            out.append(signature.signature)
        } else {
            out.append(0)
        }
        return out
    }

    // MARK: Decoding

    /// Whether `bytes` start as a bundle does (not whether they are one).
    public static func looksLikeBundle(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: magic)
    }

    public static func decode(_ data: Data) throws(Malformed) -> PluginBundle {
        guard data.count <= maximumBytes else { throw Malformed("the bundle takes \(data.count) bytes, over the limit of \(maximumBytes)") }
        var reader = Reader(bytes: [UInt8](data))
        guard try reader.take(magic.count, "the format mark") == magic else {
            throw Malformed("this is not a plugin bundle (it does not start with PHBUNDLE); make one with plugin-host pack")
        }
        let version = try reader.integer(UInt16.self, "the version")
        guard version == Self.version else { throw Malformed("the bundle's format version is \(version); this host reads version \(Self.version)") }
        let manifest = Data(try reader.take(Int(try reader.integer(UInt32.self, "the manifest's length")), "the manifest"))
        let nameBytes = try reader.take(Int(try reader.integer(UInt16.self, "the library name's length")), "the library's name")
        let libraryLength = try reader.integer(UInt64.self, "the library's length")
        guard libraryLength <= UInt64(maximumBytes) else { throw Malformed("the library's length \(libraryLength) is over the limit of \(maximumBytes)") }
        let libraryBytes = Data(try reader.take(Int(libraryLength), "the library"))
        let manifestSum = try reader.take(32, "the manifest's checksum")
        let librarySum = try reader.take(32, "the library's checksum")
        var signature: Signature?
        switch try reader.take(1, "the signature mark")[0] {
        case 0: break
        case 1: signature = Signature(publicKey: Data(try reader.take(32, "the signing key")), signature: Data(try reader.take(64, "the signature")))
        case let other: throw Malformed("unknown signature kind \(other)")
        }
        guard reader.remaining == 0 else { throw Malformed("\(reader.remaining) bytes follow the signature") }

        guard Array(SHA256.hash(data: manifest)) == manifestSum else { throw Malformed("the manifest does not match its checksum: the bundle is damaged or was changed") }
        var library: (name: String, bytes: Data)?
        if nameBytes.isEmpty {
            guard libraryBytes.isEmpty, librarySum.allSatisfy({ $0 == 0 }) else { throw Malformed("the bundle holds library bytes without a library name") }
        } else {
            guard let name = String(validating: nameBytes, as: UTF8.self), isFileName(name) else {
                throw Malformed("the library's name is not a plain file name ending in .so")
            }
            guard Array(SHA256.hash(data: libraryBytes)) == librarySum else {
                throw Malformed("the library does not match its checksum: the bundle is damaged or was changed")
            }
            library = (name, libraryBytes)
        }
        return PluginBundle(manifest: manifest, library: library, signature: signature)
    }

    /// A name that stays in the folder it is written to: no `/`, not `.` or `..`, printable ASCII, `.so`.
    static func isFileName(_ name: String) -> Bool {
        name.utf8.count <= 255 && name.hasSuffix(".so") && !name.hasPrefix(".")
            && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "\\") }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0
        var remaining: Int { bytes.count - offset }

        mutating func take(_ count: Int, _ what: String) throws(Malformed) -> [UInt8] {
            guard count >= 0, count <= remaining else { throw Malformed("the bundle ends inside \(what)") }
            defer { offset += count }
            return Array(bytes[offset..<(offset + count)])
        }

        mutating func integer<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws(Malformed) -> T {
            let raw = try take(MemoryLayout<T>.size, what)
            return raw.reversed().reduce(T.zero) { $0 << 8 | T($1) }
        }
    }
}
