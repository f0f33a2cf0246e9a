import PluginMagic

/// The magic block of a plugin library (`struct plugin_host_magic` in PluginSDK's `plugin_host_magic.h`),
/// or the host's own values to compare it with.
public struct MagicBlock: Sendable, Hashable {
    public var layout: UInt32
    public var sdkABI: UInt32
    public var sdkVersion: String
    public var toolchain: String
    public var triple: String
    public var pluginID: String
    public var pluginVersion: String

    /// What this host was built with.
    public static let host = MagicBlock(plugin_host_magic_of_this_build())

    static let symbolName = "plugin_host_magic"
    /// The size of the block, which a symbol of that name must have.
    static var size: Int { MemoryLayout<plugin_host_magic>.size }
    static let tag = Array("PLUGIN-HOST-MAGC".utf8)

    init(_ raw: plugin_host_magic) {
        var raw = raw
        layout = raw.layout
        sdkABI = raw.sdk_abi
        sdkVersion = Self.string(&raw.sdk_version)
        toolchain = Self.string(&raw.toolchain)
        triple = Self.string(&raw.triple)
        pluginID = Self.string(&raw.plugin_id)
        pluginVersion = Self.string(&raw.plugin_version)
    }

    /// Reads a block from the bytes of the exported symbol.
    init(bytes: [UInt8]) throws(LoadError.Reason) {
        guard bytes.count >= 24, bytes.prefix(16).elementsEqual(Self.tag) else { throw .magicUnreadable("its tag is not \"PLUGIN-HOST-MAGC\"") }
        let layout = bytes[16..<20].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard layout == MagicBlock.host.layout, bytes.count == Self.size else {
            throw .magicLayout(plugin: layout, host: MagicBlock.host.layout)
        }
        var raw = plugin_host_magic()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        self.init(raw)
    }

    private static func string<T>(_ field: inout T) -> String {
        withUnsafeBytes(of: &field) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
