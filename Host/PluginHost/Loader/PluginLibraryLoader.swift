import Crypto
import Foundation
import Logging
import PluginSDK
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Checks and loads plugin libraries.
///
/// ``inspect(path:)`` reads the file only: the magic block, the entry symbol and the absence of a private
/// PluginSDK copy are checked before `dlopen`, so a mismatched library never enters the process.
/// Libraries are never closed: a library containing Swift code cannot be unloaded safely.
public final class PluginLibraryLoader: Sendable {
    public struct Inspection: Sendable {
        public var magic: MagicBlock
        public var sha256: String
    }

    /// Paths loaded in this process and the digest of the file that was loaded from each.
    private let loaded = Mutex<[String: String]>([:])

    public init() {}

    /// Reads the library at `path` and checks it against this host without loading it.
    public func inspect(path: String) throws(LoadError) -> Inspection {
        func fail(_ reason: LoadError.Reason, id: String = "") -> LoadError { LoadError(path: path, pluginID: id, reason: reason) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail(.notFound) }
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw fail(.unreadable(String(describing: error)))
        }
        let sha256 = SHA256.hash(data: bytes).hexString
        do {
            let elf = try ELFFile(bytes: bytes)
            let symbols = try elf.dynamicSymbols()
            guard let symbol = symbols.first(where: { $0.name == MagicBlock.symbolName && $0.isDefined }) else {
                throw fail(.magicMissing)
            }
            let magic: MagicBlock
            do {
                magic = try MagicBlock(bytes: try elf.contents(of: symbol))
            } catch let reason as LoadError.Reason {
                throw fail(reason)
            }
            let host = MagicBlock.host
            let id = magic.pluginID
            guard magic.sdkABI == host.sdkABI else { throw fail(.abiMismatch(plugin: magic.sdkABI, host: host.sdkABI), id: id) }
            guard magic.toolchain == host.toolchain else { throw fail(.toolchainMismatch(plugin: magic.toolchain, host: host.toolchain), id: id) }
            guard magic.triple == host.triple else { throw fail(.tripleMismatch(plugin: magic.triple, host: host.triple), id: id) }
            // A defined PluginSDK symbol means the SDK was linked in statically: its types would be
            // distinct from the host's and every cast to `any Plugin` would fail.
            guard !symbols.contains(where: { $0.isDefined && $0.name.hasPrefix(Self.sdkSymbolPrefix) }) else {
                throw fail(.ownSDKCopy, id: id)
            }
            guard symbols.contains(where: { $0.name == PluginExport.entrySymbol && $0.isDefined }) else {
                throw fail(.entryMissing, id: id)
            }
            return Inspection(magic: magic, sha256: sha256)
        } catch let error as ELFFile.ParseError {
            throw fail(.notELF(error.description))
        } catch let error as LoadError {
            throw error
        } catch {
            throw fail(.unreadable(String(describing: error)))
        }
    }

    /// Loads a library that passed ``inspect(path:)`` and makes its plugin instance.
    public func load(path: String, inspection: Inspection) throws(LoadError) -> any Plugin {
        let id = inspection.magic.pluginID
        let canonical = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let clash = loaded.withLock { loaded in
            if let digest = loaded[canonical], digest != inspection.sha256 { return true }
            loaded[canonical] = inspection.sha256
            return false
        }
        // The dynamic linker answers a second dlopen of a path with the copy it already mapped, so a
        // rebuilt file at the same path would silently run the old code.
        if clash { throw LoadError(path: path, pluginID: id, reason: .differentBuildLoaded) }
        guard let handle = dlopen(canonical, RTLD_NOW | RTLD_LOCAL) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            loaded.withLock { _ = $0.removeValue(forKey: canonical) }
            throw LoadError(path: path, pluginID: id, reason: .dlopenFailed(message))
        }
        guard let symbol = dlsym(handle, PluginExport.entrySymbol) else {
            throw LoadError(path: path, pluginID: id, reason: .entryMissing)
        }
        typealias Entry = @convention(c) () -> UnsafeMutableRawPointer
        let entry = unsafeBitCast(symbol, to: Entry.self)
        guard let plugin = PluginExport.take(entry()) else {
            throw LoadError(path: path, pluginID: id, reason: .notAPlugin)
        }
        return plugin
    }

    static let sdkSymbolPrefix = "$s9PluginSDK"
}

extension Sequence where Element == UInt8 {
    /// Lower-case hex; table-driven because token hashing runs on every request.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
