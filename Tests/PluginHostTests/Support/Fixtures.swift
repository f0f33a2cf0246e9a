import Foundation
import Testing

/// Where the tests find the plugin libraries `make test` builds: the example plugins package and the
/// fixtures package, each built the way an outside author builds theirs.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static var examplePlugins: URL {
        ProcessInfo.processInfo.environment["PLUGIN_HOST_TEST_PLUGINS"].map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent("Plugins/.build/debug")
    }

    static var fixturePlugins: URL { root.appendingPathComponent("Tests/Fixtures/.build/debug") }

    static func library(_ name: String) throws -> String {
        let candidates = [examplePlugins, fixturePlugins].map { $0.appendingPathComponent("lib\(name).so").path }
        guard let path = candidates.first(where: FileManager.default.fileExists) else {
            Issue.record("lib\(name).so is not built; run `make test`, which builds Plugins/ and Tests/Fixtures/ first")
            throw FixtureMissing()
        }
        return path
    }

    struct FixtureMissing: Error {}

    /// The shipped manifest of an example plugin, pointed at the debug build.
    static func shippedManifest(_ file: String) throws -> String {
        let text = try String(contentsOf: root.appendingPathComponent("manifests/\(file)"), encoding: .utf8)
        return text.replacingOccurrences(of: "../Plugins/.build/release/", with: examplePlugins.path + "/")
    }

    static var notes: String { get throws { try shippedManifest("notes.yaml") } }
    static var audit: String { get throws { try shippedManifest("audit.yaml") } }
    static var echo: String { get throws { try shippedManifest("echo.json") } }

    /// The faulty fixture's manifest: version 1.0.0, or 2.0.0 (the same plugin, built as
    /// `libFaultyPluginV2.so`), for upgrades; `isolation` is written into its runtime when given.
    static func faulty(version: String = "1.0.0", isolation: String? = nil, batchSize: Int? = nil) throws -> String {
        """
        id: test.faulty
        name: Faulty
        version: \(version)
        sdk: ">=1.0.0 <2.0.0"
        description: Misbehaves on purpose.
        runtime:
          kind: library
          path: \(try library(version == "2.0.0" ? "FaultyPluginV2" : "FaultyPlugin"))\(isolation.map { "\n  isolation: \($0)" } ?? "")
        permissions: [storage.read, storage.write, events.subscribe:notes.*, events.publish:notes.faulty]
        subscriptions: [notes.*]\(batchSize.map { "\ndelivery: {batchSize: \($0)}" } ?? "")
        config:
          properties:
            refuse: {type: boolean, default: false}
            eventFailures: {type: integer, default: -1, minimum: -1}
            apiKey: {type: string, secret: true}
            marker: {type: string}
            stubborn: {type: boolean, default: false}
        """
    }
}

/// A folder under the system's temporary folder, removed when the test ends.
final class TemporaryFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-host-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String, _ contents: String) throws -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}
