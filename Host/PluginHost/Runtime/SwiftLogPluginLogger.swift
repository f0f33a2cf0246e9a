import Logging
import PluginSDK

/// Plugin log records through swift-log, carrying the context's metadata. The metadata is assembled
/// only when a record is written, so calls that never log pay nothing for it.
struct SwiftLogPluginLogger: PluginLogger {
    let logger: Logger
    let pluginID: String
    let workspaceID: String
    let requestID: String?

    func log(level: PluginLogLevel, _ message: String, metadata: [String: String]) {
        let level: Logger.Level = switch level {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
        guard logger.logLevel <= level else { return }
        var merged: Logger.Metadata = ["plugin.id": "\(pluginID)", "workspace.id": "\(workspaceID)"]
        if let requestID { merged["request.id"] = "\(requestID)" }
        for (key, value) in metadata { merged[key] = "\(value)" }
        logger.log(level: level, "\(message)", metadata: merged)
    }
}
