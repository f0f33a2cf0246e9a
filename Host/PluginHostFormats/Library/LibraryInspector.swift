import Crypto
import PluginSDK

/// Checks a plugin library against this host by reading its file, never loading it: the magic block,
/// the entry symbol and the absence of a private PluginSDK copy, so a mismatched library never enters
/// a process. The file is read in pieces (its headers, its symbol tables, the magic block, then its
/// digest in 1 MiB chunks): checking holds at most a few tables in memory, whatever the file's size.
public struct LibraryInspector: Sendable {
    /// What a library's file says about it.
    public struct Inspection: Sendable {
        public var magic: MagicBlock
        /// The SHA-256 of the whole file, in lowercase hex.
        public var sha256: String
    }

    /// The largest library file accepted. Swift plugins are a few MiB; the cap bounds how long the
    /// digest of a file named by mistake (or malice) can take.
    public var maximumLibraryBytes: UInt64

    public init(maximumLibraryBytes: UInt64 = 256 << 20) {
        self.maximumLibraryBytes = maximumLibraryBytes
    }

    /// Reads the library at `path` and checks it against this host without loading it.
    public func inspect(path: String) throws(LoadError) -> Inspection {
        func fail(_ reason: LoadError.Reason, id: String = "") -> LoadError { LoadError(path: path, pluginID: id, reason: reason) }
        let file: FileBytes
        do {
            file = try FileBytes(path: path)
        } catch {
            switch error {
            case .notFound: throw fail(.notFound)
            case .notRegularFile: throw fail(.notRegularFile)
            case .io(let why): throw fail(.unreadable(why))
            }
        }
        guard file.size <= maximumLibraryBytes else { throw fail(.tooLarge(size: file.size, limit: maximumLibraryBytes)) }
        let magic = try inspect(file, path: path)
        var hasher = SHA256()
        do {
            try file.forEachChunk { chunk in chunk.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
        } catch {
            throw fail(.unreadable(error.description), id: magic.pluginID)
        }
        return Inspection(magic: magic, sha256: hasher.finalize().hexString)
    }

    /// The checks of ``inspect(path:)`` on any bytes, without the digest; `path` only names them in
    /// errors. The fuzz target of the ELF reader calls this.
    package func inspect<Source: ByteSource>(_ source: Source, path: String) throws(LoadError) -> MagicBlock {
        func fail(_ reason: LoadError.Reason, id: String = "") -> LoadError { LoadError(path: path, pluginID: id, reason: reason) }
        let symbols: [ELFFile<Source>.Symbol]
        let elf: ELFFile<Source>
        do {
            elf = try ELFFile(source)
            symbols = try elf.dynamicSymbols()
        } catch {
            throw fail(.notELF(error.description))
        }
        guard let symbol = symbols.first(where: { $0.name == MagicBlock.symbolName && $0.isDefined }) else { throw fail(.magicMissing) }
        let magic: MagicBlock
        do {
            magic = try MagicBlock(bytes: try elf.contents(of: symbol, maximumSize: MagicBlock.size))
        } catch let error as ELFParseError {
            throw fail(.magicUnreadable(error.description))
        } catch let reason as LoadError.Reason {
            throw fail(reason)
        } catch {
            throw fail(.magicUnreadable("\(error)"))
        }
        let host = MagicBlock.host
        let id = magic.pluginID
        guard magic.sdkABI == host.sdkABI else { throw fail(.abiMismatch(plugin: magic.sdkABI, host: host.sdkABI), id: id) }
        guard magic.toolchain == host.toolchain else { throw fail(.toolchainMismatch(plugin: magic.toolchain, host: host.toolchain), id: id) }
        guard magic.triple == host.triple else { throw fail(.tripleMismatch(plugin: magic.triple, host: host.triple), id: id) }
        // A defined PluginSDK symbol means the SDK was linked in statically: its types would be
        // distinct from the host's and every cast to `any Plugin` would fail.
        guard !symbols.contains(where: { $0.isDefined && $0.name.hasPrefix(Self.sdkSymbolPrefix) }) else { throw fail(.ownSDKCopy, id: id) }
        guard symbols.contains(where: { $0.name == PluginExport.entrySymbol && $0.isDefined }) else { throw fail(.entryMissing, id: id) }
        return magic
    }

    static let sdkSymbolPrefix = "$s9PluginSDK"
}
