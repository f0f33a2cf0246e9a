import Foundation
import PluginSDK
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Checks and loads plugin libraries.
///
/// ``inspect(path:)`` reads the file only (``LibraryInspector``): the magic block, the entry symbol and
/// the absence of a private PluginSDK copy are checked before `dlopen`, so a mismatched library never
/// enters the process. Libraries are never closed: a library containing Swift code cannot be unloaded
/// safely.
public final class PluginLibraryLoader: Sendable {
    public typealias Inspection = LibraryInspector.Inspection

    public let inspector: LibraryInspector
    /// Paths loaded in this process and the digest of the file that was loaded from each.
    private let loaded = Mutex<[String: String]>([:])

    public init(inspector: LibraryInspector = LibraryInspector()) {
        self.inspector = inspector
    }

    /// Reads the library at `path` and checks it against this host without loading it.
    public func inspect(path: String) throws(LoadError) -> Inspection {
        try inspector.inspect(path: path)
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
}
