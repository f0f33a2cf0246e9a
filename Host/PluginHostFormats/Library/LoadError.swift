/// Why a plugin library was refused. The description names the plugin and both sides of a mismatch.
public struct LoadError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Error, Sendable, Equatable {
        case notFound
        case notRegularFile
        case tooLarge(size: UInt64, limit: UInt64)
        case unreadable(String)
        case notELF(String)
        case magicMissing
        case magicUnreadable(String)
        case magicLayout(plugin: UInt32, host: UInt32)
        case abiMismatch(plugin: UInt32, host: UInt32)
        case toolchainMismatch(plugin: String, host: String)
        case tripleMismatch(plugin: String, host: String)
        case ownSDKCopy
        case entryMissing
        case dlopenFailed(String)
        case notAPlugin
        case differentBuildLoaded
        /// The file's SHA-256 is not the one the manifest pins (`runtime.sha256`).
        case digestMismatch(pinned: String, found: String)
    }

    public var path: String
    public var pluginID: String
    public var reason: Reason

    public init(path: String, pluginID: String, reason: Reason) {
        self.path = path
        self.pluginID = pluginID
        self.reason = reason
    }

    public var description: String {
        let plugin = pluginID.isEmpty ? "the library at \(path)" : "plugin \(pluginID)"
        switch reason {
        case .notFound: return "library not found at \(path); build the plugin or fix runtime.path"
        case .notRegularFile: return "\(path) is not a regular file; runtime.path must name the plugin's .so file"
        case .tooLarge(let size, let limit):
            return "library at \(path) is \(size >> 20) MiB, more than the \(limit >> 20) MiB a plugin library may have"
        case .unreadable(let why): return "library at \(path) cannot be read: \(why)"
        case .notELF(let why): return "library at \(path) \(why)"
        case .magicMissing:
            return "\(plugin) exports no plugin_host_magic block; declare PLUGIN_HOST_MAGIC(id, version) in a C file of the plugin's package"
        case .magicUnreadable(let why): return "\(plugin) has an unreadable magic block: \(why)"
        case .magicLayout(let pluginLayout, let host):
            return "\(plugin) was built with magic block layout \(pluginLayout), this host reads layout \(host); rebuild it against this host's PluginSDK"
        case .abiMismatch(let pluginABI, let host):
            return "\(plugin) was built with SDK ABI \(pluginABI), this host speaks ABI \(host); rebuild it against this host's PluginSDK"
        case .toolchainMismatch(let pluginToolchain, let host):
            return "\(plugin) was built with \(pluginToolchain), this host with \(host); rebuild it with the host's Swift toolchain"
        case .tripleMismatch(let pluginTriple, let host):
            return "\(plugin) was built for \(pluginTriple), this host runs on \(host)"
        case .ownSDKCopy:
            return "\(plugin) contains its own copy of PluginSDK; depend on the PluginSDK dynamic library product instead of linking it statically"
        case .entryMissing:
            return "\(plugin) exports no plugin_host_entry function; add `@_cdecl(\"plugin_host_entry\")` calling PluginExport.entry"
        case .dlopenFailed(let why): return "\(plugin) could not be loaded: \(why)"
        case .notAPlugin:
            return "\(plugin) returned an object that is not a PluginSDK.Plugin of this host's SDK"
        case .digestMismatch(let pinned, let found):
            return "library at \(path) has sha256 \(found), the manifest pins \(pinned) (runtime.sha256); install the manifest of this build, or restore the pinned one"
        case .differentBuildLoaded:
            return "another build of \(path) is already loaded in this host process; install the new build from a new path or restart the host"
        }
    }
}
