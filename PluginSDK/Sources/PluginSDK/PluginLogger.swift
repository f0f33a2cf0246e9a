/// A logger provided by the host; records carry `plugin.id`, `workspace.id` and `request.id` metadata.
///
/// Put data in `metadata`, not in the message, and never log secrets.
public protocol PluginLogger: Sendable {
    /// Writes a record at `level` if the host's level lets it through.
    func log(level: PluginLogLevel, _ message: String, metadata: [String: String])
}

extension PluginLogger {
    /// Writes a debug record.
    public func debug(_ message: String, metadata: [String: String] = [:]) { log(level: .debug, message, metadata: metadata) }
    /// Writes an info record.
    public func info(_ message: String, metadata: [String: String] = [:]) { log(level: .info, message, metadata: metadata) }
    /// Writes a warning record.
    public func warning(_ message: String, metadata: [String: String] = [:]) { log(level: .warning, message, metadata: metadata) }
    /// Writes an error record.
    public func error(_ message: String, metadata: [String: String] = [:]) { log(level: .error, message, metadata: metadata) }
}

/// Levels of ``PluginLogger`` records.
public enum PluginLogLevel: String, Sendable, Hashable, CaseIterable {
    /// Detail for debugging.
    case debug
    /// Normal operation.
    case info
    /// Something unexpected the plugin recovered from.
    case warning
    /// Something failed.
    case error
}
