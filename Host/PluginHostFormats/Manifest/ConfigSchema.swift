import PluginSDK

/// The schema of a plugin's per-workspace settings: typed properties with optional defaults, some required.
public struct ConfigSchema: Sendable, Hashable, Codable {
    public enum PropertyType: String, Sendable, Hashable, Codable, CaseIterable {
        case string, integer, number, boolean, array, object
    }

    public struct Property: Sendable, Hashable, Codable {
        public var type: PropertyType
        public var description: String?
        public var defaultValue: JSONValue?
        public var allowedValues: [JSONValue]?
        public var minimum: Double?
        public var maximum: Double?
        public var secret: Bool
    }

    public var properties: [String: Property]
    public var required: [String]

    public static let empty = ConfigSchema(properties: [:], required: [])

    /// Checks a workspace's config and fills in defaults. Problems name the key and what is wrong.
    public func validate(_ config: [String: JSONValue]) -> Result<[String: JSONValue], ConfigErrors> {
        var problems: [String] = []
        var result: [String: JSONValue] = [:]
        for key in config.keys.sorted() where properties[key] == nil {
            problems.append("config.\(key): not a setting of this plugin (known: \(properties.keys.sorted().joined(separator: ", ")))")
        }
        for (key, property) in properties.sorted(by: { $0.key < $1.key }) {
            guard let value = config[key], value != .null else {
                if let defaultValue = property.defaultValue {
                    result[key] = defaultValue
                } else if required.contains(key) {
                    problems.append("config.\(key): required, no value given")
                }
                continue
            }
            if let problem = property.problem(with: value) {
                problems.append("config.\(key): \(problem)")
            } else {
                result[key] = value
            }
        }
        return problems.isEmpty ? .success(result) : .failure(ConfigErrors(problems: problems))
    }
}

public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "; ") }
}

extension ConfigSchema.Property {
    /// Why `value` does not fit this property, or `nil` when it does.
    func problem(with value: JSONValue) -> String? {
        let fits: Bool = switch (type, value) {
        case (.string, .string), (.integer, .integer), (.number, .integer), (.number, .number),
             (.boolean, .bool), (.array, .array), (.object, .object): true
        default: false
        }
        guard fits else { return "expected a \(type.rawValue), got \(value.kindName)" }
        if let allowedValues, !allowedValues.contains(value) {
            return "must be one of \(allowedValues.map(\.jsonText).joined(separator: ", "))"
        }
        if let number = value.doubleValue {
            if let minimum, number < minimum { return "must be at least \(minimum.compact)" }
            if let maximum, number > maximum { return "must be at most \(maximum.compact)" }
        }
        return nil
    }
}

extension JSONValue {
    /// Whether every number in it is finite, as JSON requires.
    var isFinite: Bool {
        switch self {
        case .number(let number): number.isFinite
        case .array(let items): items.allSatisfy(\.isFinite)
        case .object(let members): members.values.allSatisfy(\.isFinite)
        case .null, .bool, .integer, .string: true
        }
    }

    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    var jsonText: String {
        switch self {
        case .string(let value): "\"\(value)\""
        case .integer(let value): "\(value)"
        case .number(let value): value.compact
        case .bool(let value): "\(value)"
        case .null: "null"
        case .array, .object: kindName
        }
    }
}

extension Double {
    var compact: String { rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}
