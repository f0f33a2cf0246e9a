/// The version of this copy of PluginSDK.
public enum SDKVersion {
    /// The SDK's semantic version; manifests state the range of it they support in their `sdk` field.
    public static let version = "1.3.0"
    /// The binary interface version; the host refuses a plugin built against another one.
    /// Kept equal to `PLUGIN_HOST_SDK_ABI` in `plugin_host_magic.h` (a host test checks they agree).
    public static let abi: UInt32 = 3
}
