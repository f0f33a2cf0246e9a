/// Hands a plugin instance to the host.
///
/// Every plugin library exports one C entry point, `plugin_host_entry`, whose body is one call of
/// ``entry(_:)``:
///
/// ```swift
/// @_cdecl("plugin_host_entry")
/// public func pluginHostEntry() -> UnsafeMutableRawPointer {
///     PluginExport.entry(NotesPlugin())
/// }
/// ```
///
/// It also declares its magic block in a C file of the package, which the host checks before loading it:
/// `PLUGIN_HOST_MAGIC("example.notes", "1.0.0");` (see `plugin_host_magic.h` in the `PluginMagic` product).
public enum PluginExport {
    /// The name of the C symbol the host looks up after the magic block passed.
    public static let entrySymbol = "plugin_host_entry"

    /// Wraps `plugin` as a retained opaque pointer for the host, which takes ownership of it.
    public static func entry(_ plugin: some Plugin) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(plugin as AnyObject).toOpaque()
    }

    /// Takes ownership of a pointer made by ``entry(_:)``; the host's side.
    ///
    /// Returns `nil` if the object is not a ``Plugin`` of this copy of the SDK, which happens when the
    /// plugin linked its own copy of PluginSDK instead of the shared dynamic library.
    public static func take(_ pointer: UnsafeMutableRawPointer) -> (any Plugin)? {
        Unmanaged<AnyObject>.fromOpaque(pointer).takeRetainedValue() as? any Plugin
    }
}
