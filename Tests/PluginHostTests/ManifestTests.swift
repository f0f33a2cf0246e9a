import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PluginHost
import Testing

@Suite("Manifest validation")
struct ManifestTests {
    let validator = ManifestValidator()

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
        delivery: {maxAttempts: 0, backoff: fast}
        """
        let found = problems(text)
        let fields = Set(found.map(\.field))
        #expect(fields.isSuperset(of: [
            "id", "version", "runtime.path", "permissions[1]", "routes[0].method", "routes[0].path", "colour", "delivery.maxAttempts", "delivery.backoff",
        ]), "\(found)")
        #expect(found.first { $0.field == "delivery.maxAttempts" }?.message.contains("between 1 and 1000") == true)
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
        let copy = try LoaderTests.patchedCopy(of: "EchoPlugin", in: folder, field: \.sdk_abi, value: 1)
        let text = try Fixtures.echo.replacingOccurrences(of: try Fixtures.library("EchoPlugin"), with: copy)
        let found = problems(text)
        #expect(found.map(\.field) == ["runtime.path"])
        #expect(found.first?.message.contains("built with SDK ABI 1, this host speaks ABI 3") == true)
    }

    @Test("an sdk range this host does not satisfy is refused")
    func sdkRange() throws {
        let text = try Fixtures.notes.replacingOccurrences(of: "sdk: ^1.2.0", with: "sdk: \">=2.0.0\"")
        #expect(problems(text).first { $0.field == "sdk" }?.message.contains("outside \">=2.0.0\"") == true)
        let bad = try Fixtures.notes.replacingOccurrences(of: "sdk: ^1.2.0", with: "sdk: one")
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

    @Test("an SDK range at Int.max has no upper bound to compute and is refused, not a trap", arguments: [
        "^9223372036854775807.0.0", "~1.9223372036854775807.0", "^0.0.9223372036854775807", "^0.9223372036854775807", "9223372036854775807",
        "1.9223372036854775807", "~9223372036854775807", "^99999999999999999999.0.0", "^-1.0.0", "~+1.2",
    ])
    func versionRangeOverflow(range: String) throws {
        #expect(VersionRange(range) == nil)
        let text = try Fixtures.notes.replacingOccurrences(of: "sdk: ^1.2.0", with: "sdk: \"\(range)\"")
        #expect(problems(text).first { $0.field == "sdk" }?.message.contains("not a version range") == true)
    }

    @Test("config numbers that are not finite (.inf, .nan, 1e999) are refused naming the field", arguments: [
        ("default: .inf", "default"), ("default: -.inf", "default"), ("default: .nan", "default"), ("default: 1e999", "default"),
        ("minimum: .inf", "minimum"), ("maximum: .nan", "maximum"), ("minimum: -.INF", "minimum"), ("enum: [1, .nan]", "enum[1]"),
        ("default: [1, [2, .inf]]", "default"), ("minimum: lots", "minimum"), ("secret: maybe", "secret"),
    ])
    func nonFiniteNumbers(line: String, field: String) throws {
        let text = try Fixtures.notes.replacingOccurrences(of: "      default: 10000\n", with: "      \(line)\n")
            .replacingOccurrences(of: "      minimum: 1\n", with: line.hasPrefix("minimum") ? "" : "      minimum: 1\n")
            .replacingOccurrences(of: "      maximum: 100000\n", with: line.hasPrefix("maximum") ? "" : "      maximum: 100000\n")
        let found = problems(text)
        #expect(found.map(\.field) == ["config.properties.maxLength.\(field)"], "\(found)")
    }

    @Test("YAML aliases that expand past the limit and nesting past 64 levels are refused at once")
    func yamlBombs() throws {
        // Nine levels of ten aliases each: a billion values from a few hundred bytes.
        var bomb = "id: x.y\nname: Bomb\nversion: 1.0.0\nsdk: ^1.0.0\nruntime: {kind: remote, url: \"http://127.0.0.1:9\"}\nconfig:\n  properties:\n    p:\n      type: array\n      default: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            bomb += "      enum: &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        // (The repeated key `enum` is itself an error; the limit is found before keys are read.)
        let start = ContinuousClock.now
        let found = problems(bomb)
        #expect(found.count == 1)
        #expect(found.first?.message.contains("once its YAML aliases (*name) are expanded") == true, "\(found)")
        #expect(ContinuousClock.now - start < .seconds(5))
        // The same with the alias as a mapping key, which the composer would hash whole.
        let keyBomb = "a: &a [" + String(repeating: "x, ", count: 999) + "x]\nb: &b [" + Array(repeating: "*a", count: 200).joined(separator: ", ") + "]\n? *b\n: 1\n"
        #expect(problems(keyBomb).first?.message.contains("are expanded") == true)
        // A handful of aliases is fine.
        let aliases = try Fixtures.notes.replacingOccurrences(of: "      default: 10000\n", with: "      default: &d 10000\n").replacingOccurrences(of: "      maximum: 100000\n", with: "      maximum: *d\n")
        #expect(problems(aliases).isEmpty, "\(problems(aliases))")

        let deep = "id: x.y\nconfig: " + String(repeating: "[", count: 65) + String(repeating: "]", count: 65) + "\n"
        #expect(problems(deep).first?.message.contains("nests deeper than 64 levels") == true)
        let deepest = "a: " + String(repeating: "[", count: 5000)
        #expect(problems(deepest).count == 1)
    }

    @Test("a remote URL must have a host name or address, a port from 1 to 65535, and nothing after them", arguments: [
        ("http://127.0.0.1:99999", false), ("http://%00", false), ("http://127.0.0.1:0", false), ("http://exa mple.com", false),
        ("http://a..b", false), ("http://-a.example", false), ("http://[::1", false), ("ftp://127.0.0.1", false), ("http://127.0.0.1/x", false),
        ("http://user:pw@127.0.0.1", false), ("http://127.0.0.1?x=1", false), ("http://127.0.0.1:9001", true), ("https://plugins.example.com", true),
        ("http://[::1]:8080", true), ("http://notes_plugin:80/", true), ("http://127.0.0.1:65535", true),
    ])
    func remoteURLs(url: String, valid: Bool) {
        let text = "id: x.y\nname: R\nversion: 1.0.0\nsdk: ^1.0.0\nruntime: {kind: remote, url: \"\(url)\"}\n"
        #expect(problems(text).map(\.field) == (valid ? [] : ["runtime.url"]), "\(problems(text))")
    }

    @Test("a manifest file that is no regular file, or larger than 1 MiB, is refused without being read whole")
    func manifestFiles() throws {
        let folder = try TemporaryFolder()
        #expect(throws: ManifestErrors.self) { try ManifestValidator.read(file: "/dev/zero") }
        #expect(throws: ManifestErrors.self) { try ManifestValidator.read(file: folder.path) }
        #expect(throws: ManifestErrors.self) { try ManifestValidator.read(file: folder.path + "/missing.yaml") }
        let big = try folder.file("big.yaml", "")
        try FileHandle(forWritingTo: URL(fileURLWithPath: big)).truncate(atOffset: 4 << 30)
        do {
            _ = try ManifestValidator.read(file: big)
            Issue.record("a 4 GiB manifest was read")
        } catch {
            #expect(error.description.contains("larger than 1 MiB"))
        }
        let fifo = folder.path + "/fifo.yaml"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: ManifestErrors.self) { try ManifestValidator.read(file: fifo) }
    }

    @Test("a host starts, and logs each problem, when its manifests folder holds traps, bombs and devices")
    func hostileManifestsFolder() async throws {
        let folder = try TemporaryFolder()
        _ = try folder.file("a-range.yaml", try Fixtures.notes.replacingOccurrences(of: "sdk: ^1.2.0", with: "sdk: \"^9223372036854775807.0.0\""))
        _ = try folder.file("b-inf.yaml", try Fixtures.notes.replacingOccurrences(of: "default: 10000", with: "default: .inf"))
        _ = try folder.file("c-bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + (1...6).map { "a\($0): &a\($0) [" + Array(repeating: "*a\($0 == 1 ? "" : String($0 - 1))", count: 10).joined(separator: ", ") + "]" }.joined(separator: "\n"))
        #expect(mkfifo(folder.path + "/d-fifo.yaml", 0o600) == 0)
        _ = try folder.file("e-echo.json", try Fixtures.echo)
        let data = try TemporaryFolder()
        try await TestHost.running(data: data.path, configure: { $0.manifestsDirectory = folder.path }) { host in
            #expect(try await host.request(.GET, "/health").status == 200)
            let installed = (try await host.admin(.GET, "/v1/plugins").json["plugins"] as? [[String: any Sendable]])?.compactMap { $0["id"] as? String }
            #expect(installed == ["example.echo"])
            let refused = host.logs.entries.filter { $0.message.description == "manifest not installed" }.compactMap { $0.metadata["manifest"]?.description }
            #expect(Set(refused.map { URL(fileURLWithPath: $0).lastPathComponent }) == ["a-range.yaml", "b-inf.yaml", "c-bomb.yaml", "d-fifo.yaml"])
        }
    }

    @Test("delivery.batchSize takes 1 to 256 events")
    func batchSize() throws {
        let library = try Fixtures.audit.replacingOccurrences(of: "batchSize: 256", with: "batchSize: 1000")
        #expect(problems(library).first { $0.field == "delivery.batchSize" }?.message.contains("between 1 and 256") == true)
    }

    @Test("the JSON schema and the validator agree on every shipped manifest and on a corpus of bad ones")
    func schemaAgreesWithValidator() async throws {
        let folder = try TemporaryFolder()
        let remote = "id: x.remote\nname: R\nversion: 1.0.0\nsdk: ^1.0.0\nruntime: {kind: remote, url: \"http://127.0.0.1:9001\"}\n"
        let notes = try Fixtures.notes
        let cases: [(name: String, text: String, valid: Bool)] = [
            ("notes.yaml", notes, true), ("audit.yaml", try Fixtures.audit, true), ("echo.json", try Fixtures.echo, true), ("remote.yaml", remote, true),
            ("unknown field", notes + "colour: blue\n", false),
            ("id not reverse-DNS", notes.replacingOccurrences(of: "id: example.notes", with: "id: Notes"), false),
            ("version not semantic", notes.replacingOccurrences(of: "version: 1.0.0", with: "version: \"1.0\""), false),
            ("no name", notes.replacingOccurrences(of: "name: Notes\n", with: ""), false),
            ("unknown runtime kind", remote.replacingOccurrences(of: "kind: remote", with: "kind: docker"), false),
            ("library without path", notes.replacingOccurrences(of: "  path: \(try Fixtures.library("NotesPlugin"))\n", with: ""), false),
            ("remote URL with a path", remote.replacingOccurrences(of: "9001", with: "9001/plugin"), false),
            ("remote URL with port 0", remote.replacingOccurrences(of: "9001", with: "0"), false),
            ("remote URL with %00", remote.replacingOccurrences(of: "127.0.0.1:9001", with: "%00"), false),
            ("remote timeout not a duration", remote.replacingOccurrences(of: "\"}", with: "\", timeout: fast}"), false),
            ("remote with a batch size", remote + "delivery: {batchSize: 10}\n", true),
            ("batch size over 256", notes + "delivery: {batchSize: 257}\n", false),
            ("batch size 0", notes + "delivery: {batchSize: 0}\n", false),
            ("batch size and attempts", notes + "delivery: {batchSize: 256, maxAttempts: 3}\n", true),
            ("unknown permission", notes.replacingOccurrences(of: "storage.write", with: "storage.wipe"), false),
            ("publishing the host's events", notes.replacingOccurrences(of: "events.publish:notes.*", with: "events.publish:core.plugin.*"), false),
            ("route method", notes.replacingOccurrences(of: "method: POST", with: "method: FETCH"), false),
            ("route path with a leading slash", notes.replacingOccurrences(of: "path: notes\n    minimumRole: member\n  - method: GET", with: "path: /notes\n    minimumRole: member\n  - method: GET"), false),
            ("route role", notes.replacingOccurrences(of: "minimumRole: member", with: "minimumRole: owner"), false),
            ("config type", notes.replacingOccurrences(of: "type: integer", with: "type: float"), false),
            ("config secret not a boolean", notes.replacingOccurrences(of: "      maximum: 100000\n", with: "      maximum: 100000\n      secret: \"yes\"\n"), false),
        ]
        var files: [String] = []
        for (index, item) in cases.enumerated() {
            files.append(try folder.file("\(index).\(item.name.hasSuffix(".json") ? "json" : "yaml")", item.text))
            let validated = validator.validate(text: item.text, baseDirectory: "/")
            #expect(((try? validated.get()) != nil) == item.valid, "the validator on \(item.name): \(problems(item.text))")
        }
        // The schema, read by an independent implementation: Python's jsonschema (Draft 2020-12).
        let script = """
            import json, sys, yaml, jsonschema
            schema = json.load(open(sys.argv[1]))
            validator = jsonschema.Draft202012Validator(schema)
            for path in sys.argv[2:]:
                try:
                    errors = list(validator.iter_errors(yaml.safe_load(open(path))))
                except yaml.YAMLError as error:
                    errors = [error]
                print("valid" if not errors else "invalid: " + str(getattr(errors[0], "message", errors[0])).replace("\\n", " "))
            """
        let schema = Fixtures.root.appendingPathComponent("manifests/plugin-manifest.schema.json").path
        let (status, output) = try await runCommand("/usr/bin/python3", ["-c", script, schema] + files)
        try #require(status == 0, "python3 with jsonschema and yaml is needed (make test installs them): \(output)")
        let verdicts = output.split(separator: "\n").map(String.init)
        try #require(verdicts.count == cases.count, "\(output)")
        for (item, verdict) in zip(cases, verdicts) {
            #expect(verdict.hasPrefix("valid") == item.valid, "the schema on \(item.name): \(verdict)")
        }
    }
}
