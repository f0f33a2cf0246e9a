/// A permission a plugin requests in its manifest and a tenant admin grants per workspace.
///
/// The string forms are: `storage.read`, `storage.write`, `events.publish:<pattern>` and
/// `events.subscribe:<pattern>`, where the pattern is an ``EventPattern``.
public enum Permission: Sendable, Hashable, CustomStringConvertible {
    /// Read this plugin's storage in the workspace.
    case storageRead
    /// Write and delete in this plugin's storage in the workspace.
    case storageWrite
    /// Publish events whose type matches the pattern.
    case eventsPublish(EventPattern)
    /// Receive events whose type matches the pattern.
    case eventsSubscribe(EventPattern)

    /// Parses the string form; `nil` for anything else.
    public init?(_ string: String) {
        switch string {
        case "storage.read": self = .storageRead
        case "storage.write": self = .storageWrite
        default:
            let parts = string.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let pattern = EventPattern(String(parts[1])) else { return nil }
            switch parts[0] {
            case "events.publish": self = .eventsPublish(pattern)
            case "events.subscribe": self = .eventsSubscribe(pattern)
            default: return nil
            }
        }
    }

    /// The string form, as written in manifests and grants.
    public var description: String {
        switch self {
        case .storageRead: "storage.read"
        case .storageWrite: "storage.write"
        case .eventsPublish(let pattern): "events.publish:\(pattern)"
        case .eventsSubscribe(let pattern): "events.subscribe:\(pattern)"
        }
    }
}

/// The permissions granted to a plugin in one workspace.
public struct PermissionSet: Sendable, Hashable {
    /// The granted permissions.
    public var permissions: Set<Permission>

    /// Creates a set.
    public init(_ permissions: some Sequence<Permission>) {
        self.permissions = Set(permissions)
    }

    /// Whether this set holds `permission`.
    public func contains(_ permission: Permission) -> Bool {
        permissions.contains(permission)
    }

    /// Whether an event of `type` may be published.
    public func allowsPublishing(_ type: String) -> Bool {
        permissions.contains { if case .eventsPublish(let pattern) = $0 { pattern.matches(type) } else { false } }
    }

    /// Whether an event of `type` may be received.
    public func allowsReceiving(_ type: String) -> Bool {
        permissions.contains { if case .eventsSubscribe(let pattern) = $0 { pattern.matches(type) } else { false } }
    }
}

/// An event type pattern: an exact type (`notes.created`), a prefix ending in `.*` (`notes.*` matches
/// `notes.created` and `notes.tag.added`), or `*` for every type.
public struct EventPattern: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written.
    public let description: String

    /// Parses a pattern: dot-separated segments of `[a-z0-9_-]`, the last of which may be `*`.
    public init?(_ string: String) {
        let segments = string.split(separator: ".", omittingEmptySubsequences: false)
        guard !segments.isEmpty else { return nil }
        for (index, segment) in segments.enumerated() {
            if segment == "*" && index == segments.count - 1 { continue }
            guard !segment.isEmpty, segment.allSatisfy({ EventPattern.allowed.contains($0) }) else { return nil }
        }
        self.description = string
    }

    /// Whether an event type matches this pattern.
    public func matches(_ type: String) -> Bool {
        if description == "*" { return true }
        if description.hasSuffix(".*") {
            return type.hasPrefix(description.dropLast())  // keeps the dot: "notes." is a prefix of "notes.x"
                && type.count > description.count - 1
        }
        return type == description
    }

    /// Whether `type` is a valid event type to publish: a pattern without `*`.
    public static func isValidType(_ type: String) -> Bool {
        !type.contains("*") && EventPattern(type) != nil
    }

    private static let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_-")
}
