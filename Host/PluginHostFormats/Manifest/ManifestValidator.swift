import Foundation
import PluginSDK
import Yams

/// Parses and checks manifests, YAML or JSON, collecting every problem with its field path. The library
/// the manifest names is checked too (existence, sha256, magic block) without being loaded.
public struct ManifestValidator: Sendable {
    /// A manifest that passed every check, with what its library's file said (`nil` for a remote plugin).
    public struct Validated: Sendable {
        public var manifest: PluginManifest
        public var inspection: LibraryInspector.Inspection?
    }

    let inspector: LibraryInspector

    public init(inspector: LibraryInspector = LibraryInspector()) {
        self.inspector = inspector
    }

    /// The largest manifest read, in bytes: the host's default body limit. Real manifests are a few KiB.
    public static let maximumManifestBytes = 1 << 20

    /// Validates a manifest file.
    public func validate(file path: String, installedVersion: (String) -> String? = { _ in nil }) -> Result<Validated, ManifestErrors> {
        let text: String
        do {
            text = try Self.read(file: path)
        } catch {
            return .failure(error)
        }
        return validate(text: text, baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent().path, installedVersion: installedVersion)
    }

    /// The text of a manifest file: a regular file of at most ``maximumManifestBytes``.
    public static func read(file path: String) throws(ManifestErrors) -> String {
        func problem(_ message: String) -> ManifestErrors { ManifestErrors(problems: [ManifestProblem(field: "$", line: nil, message: message)]) }
        let file: FileBytes
        do {
            file = try FileBytes(path: path)
        } catch {
            switch error {
            case .notFound: throw problem("the manifest file \(path) does not exist")
            case .notRegularFile: throw problem("\(path) is not a regular file")
            case .io(let why): throw problem("cannot read the manifest file \(path): \(why)")
            }
        }
        guard file.size <= UInt64(maximumManifestBytes) else { throw problem("the manifest file \(path) is larger than \(maximumManifestBytes >> 20) MiB") }
        do {
            return String(decoding: try file.bytes(at: 0, count: Int(file.size)), as: UTF8.self)
        } catch {
            throw problem("cannot read the manifest file \(path): \(error)")
        }
    }

    /// Validates manifest text; a relative `runtime.path` resolves against `baseDirectory`, unless
    /// `library` names the file instead (a bundle's library, wherever the author's manifest had it).
    /// `installedVersion` answers which version of a plugin id is installed already, if any.
    public func validate(
        text: String, baseDirectory: String, library: String? = nil, installedVersion: (String) -> String? = { _ in nil }
    ) -> Result<Validated, ManifestErrors> {
        var reader = Reader()
        guard text.utf8.count <= Self.maximumManifestBytes else {
            return .failure(ManifestErrors(problems: [ManifestProblem(field: "$", line: nil, message: "the manifest is larger than \(Self.maximumManifestBytes >> 20) MiB")]))
        }
        let limits = YAMLLimits()
        do {
            try limits.check(text)
        } catch {
            let problem = switch error {
            case .tooDeep(let line):
                ManifestProblem(field: "$", line: line, message: "the manifest nests deeper than \(limits.maximumDepth) levels")
            case .tooManyValues(let line):
                ManifestProblem(field: "$", line: line, message: "the manifest stands for more than \(limits.maximumValues) values once its YAML aliases (*name) are expanded; write the values out instead")
            }
            return .failure(ManifestErrors(problems: [problem]))
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                return .failure(ManifestErrors(problems: [ManifestProblem(field: "$", line: nil, message: "the manifest is empty")]))
            }
            root = node
        } catch {
            return .failure(ManifestErrors(problems: [Self.syntaxProblem(error)]))
        }
        guard case .mapping(let top) = root else {
            return .failure(ManifestErrors(problems: [ManifestProblem(field: "$", line: root.mark?.line, message: "the manifest must be a mapping of fields")]))
        }
        reader.rejectUnknown(top, known: ["id", "name", "version", "sdk", "description", "runtime", "permissions", "subscriptions", "routes", "config", "limits", "delivery"], prefix: "")

        let id = reader.string(top["id"], "id", required: true)
        if let id, !Self.isValidID(id) {
            reader.problem("id", top["id"], "\"\(id)\" is not a reverse-DNS id: use lowercase dot-separated segments of [a-z0-9-], for example com.example.notes (at most 127 characters)")
        }
        let name = reader.string(top["name"], "name", required: true)
        let version = reader.string(top["version"], "version", required: true)
        if let version, SemanticVersion(version) == nil {
            reader.problem("version", top["version"], "\"\(version)\" is not a semantic version: write MAJOR.MINOR.PATCH, for example 1.0.0")
        }
        let sdk = reader.string(top["sdk"], "sdk", required: true)
        if let sdk {
            if let range = VersionRange(sdk) {
                let hostSDK = SemanticVersion(SDKVersion.version)!  // the SDK's own constant, a semantic version
                if !range.contains(hostSDK) {
                    reader.problem("sdk", top["sdk"], "this host provides PluginSDK \(hostSDK), which is outside \"\(sdk)\"")
                }
            } else {
                reader.problem("sdk", top["sdk"], "\"\(sdk)\" is not a version range: write for example ^1.0.0 or >=1.0.0 <2.0.0")
            }
        }
        let description = reader.string(top["description"], "description", required: false) ?? ""
        let runtime = readRuntime(top["runtime"], baseDirectory: baseDirectory, library: library, reader: &reader)
        let permissions = readPermissions(top["permissions"], reader: &reader)
        let subscriptions = readSubscriptions(top["subscriptions"], permissions: permissions, reader: &reader)
        let routes = readRoutes(top["routes"], reader: &reader)
        let config = readConfig(top["config"], reader: &reader)
        let workerLimits = readLimits(top["limits"], runtime: runtime, reader: &reader)
        let delivery = readDelivery(top["delivery"], reader: &reader)

        var inspection: LibraryInspector.Inspection?
        var libraryChecked = false
        if let runtime, runtime.kind == .library {
            inspection = inspectLibrary(runtime, node: top["runtime"], id: id, version: version, reader: &reader)
            libraryChecked = inspection != nil
        }
        if let id, let version, let installed = installedVersion(id) {
            if installed == version {
                reader.problem("id", top["id"], "\(id) \(version) is already installed; raise version to upgrade it, or uninstall it first")
            } else if let old = SemanticVersion(installed), let new = SemanticVersion(version), new < old {
                reader.problem("version", top["version"], "\(id) \(installed) is installed; installing \(version) would downgrade it, so uninstall it first")
            }
        }
        guard reader.problems.isEmpty, let id, let name, let version, let sdk, let runtime, runtime.kind == .remote || libraryChecked else {
            return .failure(ManifestErrors(problems: reader.problems))
        }
        let manifest = PluginManifest(
            id: id, name: name, version: version, sdk: sdk, description: description, runtime: runtime,
            permissions: permissions.map(\.description), subscriptions: subscriptions, routes: routes, config: config, limits: workerLimits,
            delivery: delivery
        )
        return .success(Validated(manifest: manifest, inspection: inspection))
    }

    static func isValidID(_ id: String) -> Bool {
        let segments = id.split(separator: ".", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-")
        return id.utf8.count <= 127 && segments.count >= 2
            && segments.allSatisfy { !$0.isEmpty && $0.allSatisfy(allowed.contains) && $0.first != "-" && $0.last != "-" }
    }

    private static func syntaxProblem(_ error: any Error) -> ManifestProblem {
        switch error as? YamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ManifestProblem(field: "$", line: mark.line, message: "YAML/JSON syntax error at column \(mark.column): \(problem)")
        case .duplicatedKeysInMapping(let duplicates, _):
            return ManifestProblem(field: "$", line: nil, message: "duplicated keys: \(duplicates.joined(separator: ", "))")
        default:
            return ManifestProblem(field: "$", line: nil, message: "YAML/JSON syntax error: \(error)")
        }
    }

    private func readRuntime(_ node: Node?, baseDirectory: String, library: String?, reader: inout Reader) -> PluginManifest.Runtime? {
        guard let mapping = reader.mapping(node, "runtime", required: true) else { return nil }
        let kind = reader.string(mapping["kind"], "runtime.kind", required: true)
        switch kind.flatMap(PluginManifest.Runtime.Kind.init(rawValue:)) {
        case .library:
            return readLibraryRuntime(mapping, baseDirectory: baseDirectory, library: library, reader: &reader)
        case .remote:
            return readRemoteRuntime(mapping, reader: &reader)
        case nil:
            if let kind {
                reader.problem("runtime.kind", mapping["kind"], "\"\(kind)\" is not a runtime kind this host runs; use library or remote")
            }
            return nil
        }
    }

    private func readLibraryRuntime(_ mapping: Node.Mapping, baseDirectory: String, library: String?, reader: inout Reader) -> PluginManifest.Runtime? {
        reader.rejectUnknown(mapping, known: ["kind", "path", "sha256", "isolation"], prefix: "runtime.")
        let path = reader.string(mapping["path"], "runtime.path", required: true)
        var isolation: PluginManifest.Runtime.Isolation?
        if let written = reader.string(mapping["isolation"], "runtime.isolation", required: false) {
            isolation = PluginManifest.Runtime.Isolation(rawValue: written)
            if isolation == nil {
                reader.problem("runtime.isolation", mapping["isolation"], "\"\(written)\" is not an isolation; use worker or in-process (or leave it out for the host's default)")
            }
        }
        let sha256 = reader.string(mapping["sha256"], "runtime.sha256", required: false)?.lowercased()
        if let sha256, sha256.count != 64 || !sha256.allSatisfy(\.isHexDigit) {
            reader.problem("runtime.sha256", mapping["sha256"], "expected 64 hexadecimal characters (the output of sha256sum)")
        }
        guard let path, !path.isEmpty else { return nil }
        let resolved = library ?? (path.hasPrefix("/") ? path : URL(fileURLWithPath: baseDirectory).appendingPathComponent(path).standardizedFileURL.path)
        return PluginManifest.Runtime(kind: .library, isolation: isolation, path: path, resolvedPath: resolved, sha256: sha256)
    }

    /// `delivery: {maxAttempts: 3, batchSize: 100}`: how its event deliveries are retried, and how many
    /// events one call may hand over (a remote plugin's calls carry one event, whatever it says).
    private func readDelivery(_ node: Node?, reader: inout Reader) -> PluginManifest.Delivery? {
        guard let node else { return nil }
        guard let mapping = reader.mapping(node, "delivery", required: false) else { return nil }
        reader.rejectUnknown(mapping, known: ["maxAttempts", "batchSize"], prefix: "delivery.")
        var delivery = PluginManifest.Delivery()
        if let attempts = mapping["maxAttempts"] {
            if case .scalar(let scalar) = attempts, scalar.style == .plain, let count = Int(scalar.string), (1...1_000).contains(count) {
                delivery.maxAttempts = count
            } else {
                reader.problem("delivery.maxAttempts", attempts, "\"\(attempts.scalar?.string ?? "")\" is not a number of attempts between 1 and 1000")
            }
        }
        if let size = mapping["batchSize"] {
            let limit = PluginManifest.Delivery.maximumBatchSize
            if case .scalar(let scalar) = size, scalar.style == .plain, let count = Int(scalar.string), (1...limit).contains(count) {
                delivery.batchSize = count
            } else {
                reader.problem("delivery.batchSize", size, "\"\(size.scalar?.string ?? "")\" is not a number of events between 1 and \(limit)")
            }
        }
        return delivery
    }

    /// `limits: {memory: 256MiB, openFiles: 256}`: a library plugin's worker limits.
    private func readLimits(_ node: Node?, runtime: PluginManifest.Runtime?, reader: inout Reader) -> PluginManifest.Limits? {
        guard let node else { return nil }
        guard let mapping = reader.mapping(node, "limits", required: false) else { return nil }
        if runtime?.kind == .remote {
            reader.problem("limits", node, "limits apply to a library plugin's worker process; a remote plugin runs where it is deployed")
            return nil
        }
        reader.rejectUnknown(mapping, known: ["memory", "openFiles"], prefix: "limits.")
        var limits = PluginManifest.Limits()
        if let memory = mapping["memory"] {
            let text = memory.scalar?.string ?? ""
            if let bytes = Self.bytes(text), (Self.minimumMemory...(1 << 40)).contains(bytes) {
                limits.memoryBytes = bytes
            } else {
                reader.problem("limits.memory", memory, "\"\(text)\" is not a memory size between 64MiB and 1TiB; write for example 256MiB or 2GiB")
            }
        }
        if let files = mapping["openFiles"] {
            if case .scalar(let scalar) = files, scalar.style == .plain, let count = Int(scalar.string), (16...1_048_576).contains(count) {
                limits.openFiles = count
            } else {
                reader.problem("limits.openFiles", files, "\"\(files.scalar?.string ?? "")\" is not a number of open files between 16 and 1048576")
            }
        }
        return limits
    }

    /// The smallest memory limit: a worker's runtime and Foundation reserve about 150 MiB of address space.
    public static let minimumMemory: UInt64 = 64 << 20

    /// `256MiB`, `2GiB`, `512KiB` or a number of bytes; `nil` for anything else or an overflow.
    public static func bytes(_ text: String) -> UInt64? {
        let units: [(String, UInt64)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40), ("B", 1), ("", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let value = UInt64(digits) else { continue }
            let (bytes, overflow) = value.multipliedReportingOverflow(by: factor)
            return overflow ? nil : bytes
        }
        return nil
    }

    private func readRemoteRuntime(_ mapping: Node.Mapping, reader: inout Reader) -> PluginManifest.Runtime? {
        reader.rejectUnknown(mapping, known: ["kind", "url", "timeout"], prefix: "runtime.")
        var url = reader.string(mapping["url"], "runtime.url", required: true)
        if let text = url {
            if Self.isBaseURL(text) {
                while url?.hasSuffix("/") == true { url?.removeLast() }
            } else {
                reader.problem("runtime.url", mapping["url"], "\"\(text)\" is not a base URL: write http:// or https://, a host, an optional port and path, no path, query, fragment or credentials, for example http://127.0.0.1:9001")
                url = nil
            }
        }
        var timeout: Int?
        if let node = mapping["timeout"] {
            let text = node.scalar?.string ?? ""
            if let milliseconds = Self.milliseconds(text), (1...600_000).contains(milliseconds) {
                timeout = milliseconds
            } else {
                reader.problem("runtime.timeout", node, "\"\(text)\" is not a timeout between 1ms and 10m; write for example 250ms, 5s or 1m")
            }
        }
        guard let url else { return nil }
        return PluginManifest.Runtime(kind: .remote, path: "", resolvedPath: "", sha256: nil, url: url, timeoutMilliseconds: timeout)
    }

    /// `http` or `https`, a host name or IP address, an optional port from 1 to 65535, and no path,
    /// query, fragment or credentials.
    static func isBaseURL(_ text: String) -> Bool {
        guard let parsed = URLComponents(string: text), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
              let host = parsed.percentEncodedHost, isHost(host),
              parsed.port.map({ (1...65535).contains($0) }) ?? true,
              parsed.query == nil, parsed.fragment == nil, parsed.user == nil, parsed.password == nil, parsed.path.isEmpty || parsed.path == "/"
        else { return false }
        return true
    }

    /// A DNS name (labels of letters, digits, `-` and `_`), an IPv4 address, or an IPv6 address in brackets.
    private static func isHost(_ host: String) -> Bool {
        // An IPv6 address, with or without the brackets (Foundation versions differ in which they give).
        let address = host.hasPrefix("[") && host.hasSuffix("]") ? host.dropFirst().dropLast() : host[...]
        if address.contains(":") {
            return address.count > 1 && address.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return host.utf8.count <= 253 && labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }

    /// `250ms`, `5s`, `1.5s`, `1m`, or a bare number of seconds, in milliseconds.
    static func milliseconds(_ text: String) -> Int? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        // Range-checked as a Double first: converting a huge value to Int would trap.
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count)), value.isFinite, value > 0, value * factor < 1e9 else { return nil }
            return Int((value * factor).rounded())
        }
        guard let value = Double(text), value.isFinite, value > 0, value < 1e6 else { return nil }
        return Int((value * 1000).rounded())
    }

    private func inspectLibrary(
        _ runtime: PluginManifest.Runtime, node: Node?, id: String?, version: String?, reader: inout Reader
    ) -> LibraryInspector.Inspection? {
        let pathNode = node?.mapping?["path"]
        let inspection: LibraryInspector.Inspection
        do {
            inspection = try inspector.inspect(path: runtime.resolvedPath)
        } catch {
            reader.problem("runtime.path", pathNode, error.description)
            return nil
        }
        var fine = true
        if let expected = runtime.sha256, expected != inspection.sha256 {
            reader.problem("runtime.sha256", node?.mapping?["sha256"], "sha256 mismatch: the manifest expects \(expected), the library at \(runtime.resolvedPath) has \(inspection.sha256)")
            fine = false
        }
        if let id, inspection.magic.pluginID != id {
            reader.problem("runtime.path", pathNode, "the library's magic block declares plugin id \"\(inspection.magic.pluginID)\", the manifest says \"\(id)\"")
            fine = false
        }
        if let version, inspection.magic.pluginVersion != version {
            reader.problem("runtime.path", pathNode, "the library's magic block declares version \(inspection.magic.pluginVersion), the manifest says \(version); rebuild the plugin or fix the manifest")
            fine = false
        }
        return fine ? inspection : nil
    }

    private func readPermissions(_ node: Node?, reader: inout Reader) -> [Permission] {
        var permissions: [Permission] = []
        for (index, item) in reader.sequence(node, "permissions").enumerated() {
            let field = "permissions[\(index)]"
            guard let text = reader.string(item, field, required: true) else { continue }
            guard let permission = Permission(text) else {
                reader.problem(field, item, "unknown permission \"\(text)\"; use storage.read, storage.write, events.publish:<pattern> or events.subscribe:<pattern>")
                continue
            }
            if permissions.contains(permission) {
                reader.problem(field, item, "\"\(text)\" is listed twice")
            }
            if case .eventsPublish(let pattern) = permission, pattern.description.hasPrefix(HostEvents.prefix) {
                reader.problem(field, item, "\(HostEvents.prefix)* events are the host's own; a plugin may subscribe to them but not publish them")
            }
            permissions.append(permission)
        }
        return permissions
    }

    private func readSubscriptions(_ node: Node?, permissions: [Permission], reader: inout Reader) -> [String] {
        var subscriptions: [String] = []
        for (index, item) in reader.sequence(node, "subscriptions").enumerated() {
            let field = "subscriptions[\(index)]"
            guard let text = reader.string(item, field, required: true) else { continue }
            guard let pattern = EventPattern(text) else {
                reader.problem(field, item, "\"\(text)\" is not an event pattern: dot-separated segments of [a-z0-9_-], optionally ending in .*")
                continue
            }
            let covered = permissions.contains {
                guard case .eventsSubscribe(let granted) = $0 else { return false }
                return granted == pattern || granted.description == "*"
                    || (granted.description.hasSuffix(".*") && pattern.description.hasPrefix(String(granted.description.dropLast())))
            }
            if !covered {
                reader.problem(field, item, "no requested permission covers it; add events.subscribe:\(text) to permissions")
            }
            subscriptions.append(text)
        }
        return subscriptions
    }

    private func readRoutes(_ node: Node?, reader: inout Reader) -> [PluginManifest.Route] {
        var routes: [PluginManifest.Route] = []
        let methods: Set = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"]
        for (index, item) in reader.sequence(node, "routes").enumerated() {
            let field = "routes[\(index)]"
            guard let mapping = reader.mapping(item, field, required: true) else { continue }
            reader.rejectUnknown(mapping, known: ["method", "path", "minimumRole"], prefix: field + ".")
            let method = reader.string(mapping["method"], field + ".method", required: true)?.uppercased()
            if let method, !methods.contains(method) {
                reader.problem(field + ".method", mapping["method"], "\"\(method)\" is not an HTTP method; use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *")
            }
            let path = reader.string(mapping["path"], field + ".path", required: true)
            if let path, path.isEmpty || path.hasPrefix("/") || path.split(separator: "/", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
                reader.problem(field + ".path", mapping["path"], "\"\(path)\" must be a path below resources/ without a leading slash, for example notes or notes/{id}")
            }
            var role = CallerRole.member
            if let text = reader.string(mapping["minimumRole"], field + ".minimumRole", required: false) {
                if let parsed = CallerRole(rawValue: text) {
                    role = parsed
                } else {
                    reader.problem(field + ".minimumRole", mapping["minimumRole"], "\"\(text)\" is not a role; use member, tenant-admin or platform-admin")
                }
            }
            if let method, let path { routes.append(PluginManifest.Route(method: method, path: path, minimumRole: role)) }
        }
        return routes
    }

    private func readConfig(_ node: Node?, reader: inout Reader) -> ConfigSchema {
        guard let node, let mapping = reader.mapping(node, "config", required: false) else { return .empty }
        reader.rejectUnknown(mapping, known: ["properties", "required"], prefix: "config.")
        var properties: [String: ConfigSchema.Property] = [:]
        if let propertyNodes = reader.mapping(mapping["properties"], "config.properties", required: false) {
            for (keyNode, valueNode) in propertyNodes {
                guard let key = keyNode.string else { continue }
                let field = "config.properties.\(key)"
                guard let property = reader.mapping(valueNode, field, required: true) else { continue }
                reader.rejectUnknown(property, known: ["type", "description", "default", "enum", "minimum", "maximum", "secret"], prefix: field + ".")
                guard let typeName = reader.string(property["type"], field + ".type", required: true) else { continue }
                guard let type = ConfigSchema.PropertyType(rawValue: typeName) else {
                    reader.problem(field + ".type", property["type"], "\"\(typeName)\" is not a type; use \(ConfigSchema.PropertyType.allCases.map(\.rawValue).joined(separator: ", "))")
                    continue
                }
                var result = ConfigSchema.Property(
                    type: type, description: reader.string(property["description"], field + ".description", required: false),
                    defaultValue: reader.value(property["default"], field + ".default"),
                    allowedValues: reader.list(property["enum"], field + ".enum")?.enumerated().compactMap { reader.value($1, "\(field).enum[\($0)]") },
                    minimum: reader.number(property["minimum"], field + ".minimum"), maximum: reader.number(property["maximum"], field + ".maximum"),
                    secret: reader.bool(property["secret"], field + ".secret") ?? false
                )
                if let defaultValue = result.defaultValue, let problem = result.problem(with: defaultValue) {
                    reader.problem(field + ".default", property["default"], problem)
                    result.defaultValue = nil
                }
                properties[key] = result
            }
        }
        var required: [String] = []
        for (index, item) in reader.sequence(mapping["required"], "config.required").enumerated() {
            guard let name = reader.string(item, "config.required[\(index)]", required: true) else { continue }
            if properties[name] == nil {
                reader.problem("config.required[\(index)]", item, "\"\(name)\" is not declared under config.properties")
            }
            required.append(name)
        }
        return ConfigSchema(properties: properties, required: required)
    }

    /// The JSON value a YAML node stands for; numbers may be non-finite here (`.inf`, `1e999`), which
    /// ``Reader/value(_:_:)`` refuses.
    static func jsonValue(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            if node.null != nil && scalar.style == .plain { return .null }
            if scalar.style == .plain, let bool = node.bool { return .bool(bool) }
            if scalar.style == .plain, let int = node.int { return .integer(Int64(int)) }
            if scalar.style == .plain, let double = node.float { return .number(double) }
            return .string(scalar.string)
        case .sequence(let sequence): return .array(sequence.map(jsonValue))
        case .mapping(let mapping): return .object(Dictionary(mapping.compactMap { key, value in key.string.map { ($0, jsonValue(value)) } }, uniquingKeysWith: { $1 }))
        case .alias: return .null
        }
    }
}

/// Collects problems while reading a node tree.
struct Reader {
    var problems: [ManifestProblem] = []

    mutating func problem(_ field: String, _ node: Node?, _ message: String) {
        problems.append(ManifestProblem(field: field, line: node?.mark?.line, message: message))
    }

    mutating func string(_ node: Node?, _ field: String, required: Bool) -> String? {
        guard let node else {
            if required { problem(field, nil, "missing required field") }
            return nil
        }
        guard case .scalar(let scalar) = node, node.null == nil || scalar.style != .plain else {
            problem(field, node, node.null != nil ? (required ? "missing required field (it is empty)" : "must not be empty") : "expected a string")
            return nil
        }
        return scalar.string
    }

    mutating func mapping(_ node: Node?, _ field: String, required: Bool) -> Node.Mapping? {
        guard let node else {
            if required { problem(field, nil, "missing required field") }
            return nil
        }
        guard case .mapping(let mapping) = node else {
            problem(field, node, "expected a mapping of fields")
            return nil
        }
        return mapping
    }

    mutating func sequence(_ node: Node?, _ field: String) -> [Node] {
        guard let node else { return [] }
        guard case .sequence(let sequence) = node else {
            problem(field, node, "expected a list")
            return []
        }
        return Array(sequence)
    }

    /// A JSON value (a config default or `enum` entry): any YAML value whose numbers are finite.
    mutating func value(_ node: Node?, _ field: String) -> JSONValue? {
        guard let node else { return nil }
        let value = ManifestValidator.jsonValue(node)
        guard value.isFinite else {
            problem(field, node, "holds a number that is not finite (.inf, .nan or beyond ±1.8e308); JSON has no such numbers")
            return nil
        }
        return value
    }

    /// A finite number (a config `minimum` or `maximum`).
    mutating func number(_ node: Node?, _ field: String) -> Double? {
        guard let node else { return nil }
        guard case .scalar(let scalar) = node, scalar.style == .plain, let number = node.float else {
            problem(field, node, "expected a number")
            return nil
        }
        guard number.isFinite else {
            problem(field, node, "\"\(scalar.string)\" is not a finite number; write for example 0 or 100")
            return nil
        }
        return number
    }

    mutating func bool(_ node: Node?, _ field: String) -> Bool? {
        guard let node else { return nil }
        guard case .scalar(let scalar) = node, scalar.style == .plain, let flag = node.bool else {
            problem(field, node, "expected true or false")
            return nil
        }
        return flag
    }

    /// A list, or `nil` (with a problem when the node is something else).
    mutating func list(_ node: Node?, _ field: String) -> [Node]? {
        guard let node else { return nil }
        guard case .sequence(let sequence) = node else {
            problem(field, node, "expected a list")
            return nil
        }
        return Array(sequence)
    }

    mutating func rejectUnknown(_ mapping: Node.Mapping, known: Set<String>, prefix: String) {
        for (key, _) in mapping {
            guard let name = key.string, !known.contains(name) else { continue }
            problem(prefix + name, key, "unknown field; known fields here: \(known.sorted().joined(separator: ", "))")
        }
    }
}

/// The events the host itself publishes into a workspace (docs/events.md); their types start with
/// `core.`, which no plugin may publish.
public enum HostEvents {
    public static let prefix = "core."
    /// The id published events name as their source.
    public static let source = "core"
    public static let pluginEnabled = "core.plugin.enabled"
    public static let pluginDisabled = "core.plugin.disabled"
    public static let workspaceCreated = "core.workspace.created"
}
