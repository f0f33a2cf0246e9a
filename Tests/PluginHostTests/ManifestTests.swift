import Foundation
import PluginHost
import Testing

@Suite("Manifest validation")
struct ManifestTests {
    let validator = ManifestValidator(loader: PluginLibraryLoader())

    func problems(_ text: String, installedVersion: @escaping (String) -> String? = { _ in nil }) -> [ManifestProblem] {
        switch validator.validate(text: text, baseDirectory: "/", installedVersion: installedVersion) {
        case .success: return []
        case .failure(let errors): return errors.problems
        }
    }

    @Test("the shipped manifests are valid, YAML and JSON alike")
    func shippedManifestsValid() throws {
        for manifest in [try Fixtures.notes, try Fixtures.audit, try Fixtures.echo] {
            #expect(problems(manifest).isEmpty, "\(problems(manifest))")
        }
    }

    @Test("a YAML syntax error is reported with its line")
    func syntaxError() {
        let found = problems("id: example.x\nname: [unclosed\nversion: 1.0.0\n")
        #expect(found.count == 1)
        #expect(found.first?.field == "$")
        #expect(found.first?.line != nil)
        #expect(found.first?.message.contains("syntax error") == true)
    }

    @Test("every problem is reported at once, each with its field path")
    func everyProblemReported() throws {
        let text = """
        name: Broken
        version: 1.0
        sdk: "^1.0.0"
        runtime:
          kind: library
          path: /nonexistent/libNope.so
        permissions:
          - storage.read
          - storage.delete-everything
        routes:
          - method: FETCH
            path: /leading
        colour: blue
        """
        let found = problems(text)
        let fields = Set(found.map(\.field))
        #expect(fields.isSuperset(of: ["id", "version", "runtime.path", "permissions[1]", "routes[0].method", "routes[0].path", "colour"]), "\(found)")
        #expect(found.first { $0.field == "id" }?.message == "missing required field")
        #expect(found.first { $0.field == "version" }?.message.contains("not a semantic version") == true)
        #expect(found.first { $0.field == "permissions[1]" }?.message.contains("unknown permission \"storage.delete-everything\"") == true)
        #expect(found.first { $0.field == "runtime.path" }?.message.contains("library not found") == true)
        #expect(found.first { $0.field == "version" }?.line == 2)
    }

    @Test("a sha256 that does not match the library is refused")
    func sha256Mismatch() throws {
        let text = try Fixtures.echo.replacingOccurrences(of: "\"kind\": \"library\",", with: "\"kind\": \"library\", \"sha256\": \"\(String(repeating: "ab", count: 32))\",")
        let found = problems(text)
        #expect(found.map(\.field) == ["runtime.sha256"])
        #expect(found.first?.message.contains("sha256 mismatch") == true)
    }

    @Test("a library whose magic block names another plugin or version is refused")
    func magicMismatch() throws {
        let otherID = try Fixtures.notes.replacingOccurrences(of: "id: example.notes", with: "id: example.other")
        #expect(problems(otherID).first?.message.contains("declares plugin id \"example.notes\", the manifest says \"example.other\"") == true)
        let otherVersion = try Fixtures.notes.replacingOccurrences(of: "version: 1.0.0", with: "version: 1.2.0")
        #expect(problems(otherVersion).first?.message.contains("declares version 1.0.0, the manifest says 1.2.0") == true)
    }

    @Test("a library built against another SDK ABI is refused by validation")
    func magicABIMismatch() throws {
        let folder = try TemporaryFolder()
        let copy = try LoaderTests.patchedCopy(of: "EchoPlugin", in: folder, field: \.sdk_abi, value: 2)
        let text = try Fixtures.echo.replacingOccurrences(of: try Fixtures.library("EchoPlugin"), with: copy)
        let found = problems(text)
        #expect(found.map(\.field) == ["runtime.path"])
        #expect(found.first?.message.contains("built with SDK ABI 2, this host speaks ABI 1") == true)
    }

    @Test("an sdk range this host does not satisfy is refused")
    func sdkRange() throws {
        let text = try Fixtures.notes.replacingOccurrences(of: "sdk: ^1.0.0", with: "sdk: \">=2.0.0\"")
        #expect(problems(text).first { $0.field == "sdk" }?.message.contains("outside \">=2.0.0\"") == true)
        let bad = try Fixtures.notes.replacingOccurrences(of: "sdk: ^1.0.0", with: "sdk: one")
        #expect(problems(bad).first { $0.field == "sdk" }?.message.contains("not a version range") == true)
    }

    @Test("the same id and version as an installed plugin is refused")
    func duplicate() throws {
        let found = problems(try Fixtures.notes) { $0 == "example.notes" ? "1.0.0" : nil }
        #expect(found.map(\.field) == ["id"])
        #expect(found.first?.message.contains("already installed") == true)
        let downgrade = problems(try Fixtures.notes) { $0 == "example.notes" ? "1.5.0" : nil }
        #expect(downgrade.map(\.field) == ["version"])
        #expect(downgrade.first?.message.contains("would downgrade it") == true)
    }

    @Test("subscriptions need a requested subscribe permission; config defaults must fit their type")
    func subscriptionsAndConfig() throws {
        let text = try Fixtures.audit.replacingOccurrences(of: "  - events.subscribe:notes.*\n", with: "")
            + "config:\n  properties:\n    limit: {type: integer, default: lots}\n  required: [missing]\n"
        let fields = Set(problems(text).map(\.field))
        #expect(fields == ["subscriptions[0]", "config.properties.limit.default", "config.required[0]"], "\(problems(text))")
    }

    @Test("version ranges follow npm semantics", arguments: [
        ("^1.2.0", "1.9.9", true), ("^1.2.0", "2.0.0", false), ("^0.2.0", "0.2.5", true), ("^0.2.0", "0.3.0", false),
        ("~1.2.0", "1.2.9", true), ("~1.2.0", "1.3.0", false), (">=1.0.0 <2.0.0", "1.5.0", true), ("1.x", "1.4.2", true),
        ("1.x", "2.0.0", false), ("*", "9.9.9", true), ("<1.0.0 || >=3.0.0", "3.1.0", true), ("1.0.0", "1.0.0-beta.1", false),
    ])
    func versionRanges(range: String, version: String, expected: Bool) throws {
        let parsed = try #require(VersionRange(range))
        let candidate = try #require(SemanticVersion(version))
        #expect(parsed.contains(candidate) == expected)
    }

    @Test("config is checked against the manifest's schema and defaults are applied")
    func configSchema() throws {
        let validated = try validator.validate(text: try Fixtures.notes, baseDirectory: "/").get()
        let schema = validated.manifest.config
        #expect(try schema.validate([:]).get() == ["maxLength": .integer(10000)])
        #expect(try schema.validate(["maxLength": .integer(20)]).get() == ["maxLength": .integer(20)])
        #expect(throws: ConfigErrors.self) { try schema.validate(["maxLength": .string("long")]).get() }
        #expect(throws: ConfigErrors.self) { try schema.validate(["maxLength": .integer(0)]).get() }
        #expect(throws: ConfigErrors.self) { try schema.validate(["colour": .string("blue")]).get() }
    }
}
