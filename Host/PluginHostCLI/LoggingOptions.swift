import ArgumentParser
import Logging

/// `--log-level`, shared by the commands that run a server: logs go to stderr through swift-log.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// Bootstraps swift-log at the chosen level (once per process) and returns a logger labelled `label`.
    func bootstrap(label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level: unknown level \(logLevel)") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
