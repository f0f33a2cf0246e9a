import Foundation
import PluginSDK

/// The bodies of the remote plugin protocol (docs/remote-protocol.md) as one set of `Codable` types,
/// used by both sides: the host and `serve-plugin` encode and decode the same declarations. The
/// envelope (headers, context, signature) is ``RemoteEnvelope``; SDK tokens are ``SDKToken``.
public enum RemoteWire {
    /// `{"error": {"code", "message", "requestId"?, "details"?, "current"?}}`: every error body of the
    /// host's API and of a remote's protocol layer.
    public struct ErrorBody: Codable, Sendable, Equatable {
        public struct Detail: Codable, Sendable, Equatable {
            public var code: String
            public var message: String?
            public var requestId: String?
            public var details: [String]?
            /// For `VERSION_CONFLICT`: the key's current version.
            public var current: UInt64?
            /// For `VERSION_CONFLICT`: the key whose version differed.
            public var key: String?

            public init(code: String, message: String?, requestId: String? = nil, details: [String]? = nil, current: UInt64? = nil, key: String? = nil) {
                self.code = code
                self.message = message
                self.requestId = requestId
                self.details = details
                self.current = current
                self.key = key
            }

            enum CodingKeys: String, CodingKey { case code, message, requestId, details, current, key }

            /// Only `code` must be there and be a string: a remote's body with other shapes of the
            /// optional fields still gives its code.
            public init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                code = try container.decode(String.self, forKey: .code)
                message = try? container.decodeIfPresent(String.self, forKey: .message)
                requestId = try? container.decodeIfPresent(String.self, forKey: .requestId)
                details = try? container.decodeIfPresent([String].self, forKey: .details)
                current = try? container.decodeIfPresent(UInt64.self, forKey: .current)
                key = try? container.decodeIfPresent(String.self, forKey: .key)
            }
        }
        public var error: Detail

        public init(_ error: Detail) {
            self.error = error
        }
    }

    // MARK: Host → remote

    /// The body of an `event` call.
    public struct Event: Codable, Sendable, Equatable {
        public var id, type, workspaceId, sourcePluginId: String
        public var occurredAt: Date
        /// The payload in base64.
        public var payload: String

        public init(_ event: PluginEvent) {
            id = event.id
            type = event.type
            workspaceId = event.workspaceID
            sourcePluginId = event.sourcePluginID
            occurredAt = event.occurredAt
            payload = event.payload.base64EncodedString()
        }

        /// The event, if its payload is base64.
        public var pluginEvent: PluginEvent? {
            Data(base64Encoded: payload).map {
                PluginEvent(id: id, type: type, workspaceID: workspaceId, sourcePluginID: sourcePluginId, occurredAt: occurredAt, payload: $0)
            }
        }
    }

    /// The body of an `enabled` call: the workspace's secret, and whether it is delivered again to a
    /// remote that lost it (the plugin's hook is not called again then).
    public struct Enabled: Codable, Sendable, Equatable {
        public var enablementSecret: String
        public var resumed: Bool?

        public init(enablementSecret: String, resumed: Bool) {
            self.enablementSecret = enablementSecret
            self.resumed = resumed
        }
    }

    // MARK: The SDK over HTTP (remote → host)

    /// `storage/get` and `storage/delete`.
    public struct Key: Codable, Sendable, Equatable {
        public var key: String
        public init(key: String) { self.key = key }
    }

    /// `storage/put`; the value in base64, `ifVersion` for a compare-and-set (`0`: absent).
    public struct Put: Codable, Sendable, Equatable {
        public var key: String
        public var value: String
        public var ifVersion: UInt64?

        public init(key: String, value: Data, ifVersion: UInt64?) {
            self.key = key
            self.value = value.base64EncodedString()
            self.ifVersion = ifVersion
        }
    }

    /// `storage/list`.
    public struct List: Codable, Sendable, Equatable {
        public var prefix: String?
        public var limit: Int?
        public var after: String?

        public init(prefix: String, limit: Int, after: String?) {
            self.prefix = prefix
            self.limit = limit
            self.after = after
        }
    }

    /// `events/publish`; the payload in base64.
    public struct Publish: Codable, Sendable, Equatable {
        public var type: String
        public var payload: String

        public init(type: String, payload: Data) {
            self.type = type
            self.payload = payload.base64EncodedString()
        }
    }

    /// A stored value as `storage/get` and `storage/list` answer it; the value in base64.
    public struct Entry: Codable, Sendable, Equatable {
        public var key: String
        public var value: String
        public var version: UInt64

        public init(_ stored: StoredValue) {
            key = stored.key
            value = stored.value.base64EncodedString()
            version = stored.version
        }

        public var stored: StoredValue { StoredValue(key: key, value: Data(base64Encoded: value) ?? Data(), version: version) }
    }

    /// `storage/list`'s answer; `nextCursor` is `null` on the last page (present, not absent).
    public struct Page: Codable, Sendable, Equatable {
        public var entries: [Entry]
        public var nextCursor: String?

        public init(entries: [Entry], nextCursor: String?) {
            self.entries = entries
            self.nextCursor = nextCursor
        }

        enum CodingKeys: String, CodingKey { case entries, nextCursor }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(entries, forKey: .entries)
            try container.encode(nextCursor, forKey: .nextCursor)
        }
    }

    /// `storage/put`'s answer.
    public struct Version: Codable, Sendable, Equatable {
        public var version: UInt64
        public init(version: UInt64) { self.version = version }
    }

    /// `batch`'s body: the operations of a ``WriteBatch``, in order, each named by `op`; values and
    /// payloads in base64.
    public struct Batch: Codable, Sendable, Equatable {
        public struct Operation: Codable, Sendable, Equatable {
            /// `put`, `delete`, `check` or `publish`.
            public var op: String
            public var key: String?
            public var value: String?
            public var ifVersion: UInt64?
            /// For `check`: the version the key must have (`0`: absent).
            public var version: UInt64?
            public var type: String?
            public var payload: String?

            public init(op: String, key: String? = nil, value: String? = nil, ifVersion: UInt64? = nil, version: UInt64? = nil, type: String? = nil, payload: String? = nil) {
                self.op = op
                self.key = key
                self.value = value
                self.ifVersion = ifVersion
                self.version = version
                self.type = type
                self.payload = payload
            }
        }

        public var operations: [Operation]

        public init(_ batch: WriteBatch) {
            operations = batch.operations.map { operation in
                switch operation {
                case .put(let key, let value, let expected): Operation(op: "put", key: key, value: value.base64EncodedString(), ifVersion: expected)
                case .delete(let key, let expected): Operation(op: "delete", key: key, ifVersion: expected)
                case .check(let key, let version): Operation(op: "check", key: key, version: version)
                case .publish(let type, let payload): Operation(op: "publish", type: type, payload: payload.base64EncodedString())
                }
            }
        }

        /// The batch these operations describe, or what is wrong with the first one that describes none.
        public func batch() -> Result<WriteBatch, BatchError> {
            var batch = WriteBatch()
            for (index, operation) in operations.enumerated() {
                func missing(_ field: String) -> Result<WriteBatch, BatchError> { .failure(BatchError("operations[\(index)]: \(operation.op) needs \(field)")) }
                switch operation.op {
                case "put":
                    guard let key = operation.key else { return missing("key") }
                    guard let text = operation.value, let value = Data(base64Encoded: text) else { return missing("value in base64") }
                    batch.put(key, value, ifVersion: operation.ifVersion)
                case "delete":
                    guard let key = operation.key else { return missing("key") }
                    batch.delete(key, ifVersion: operation.ifVersion)
                case "check":
                    guard let key = operation.key else { return missing("key") }
                    guard let version = operation.version else { return missing("version") }
                    batch.check(key, version: version)
                case "publish":
                    guard let type = operation.type else { return missing("type") }
                    guard let text = operation.payload, let payload = Data(base64Encoded: text) else { return missing("payload in base64") }
                    batch.publish(type: type, payload: payload)
                default:
                    return .failure(BatchError("operations[\(index)].op must be put, delete, check or publish, not \(operation.op)"))
                }
            }
            return .success(batch)
        }
    }

    public struct BatchError: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// `batch`'s answer: one result per operation, in order.
    public struct BatchResult: Codable, Sendable, Equatable {
        public struct Outcome: Codable, Sendable, Equatable {
            public var op: String
            /// A put's new version.
            public var version: UInt64?
            /// A delete's: whether the key existed.
            public var deleted: Bool?
            /// A publish's event id.
            public var id: String?
        }

        public var results: [Outcome]

        public init(_ result: WriteBatchResult) {
            results = result.outcomes.map { outcome in
                switch outcome {
                case .put(let version): Outcome(op: "put", version: version)
                case .delete(let existed): Outcome(op: "delete", deleted: existed)
                case .check: Outcome(op: "check")
                case .publish(let id): Outcome(op: "publish", id: id)
                }
            }
        }

        public var result: WriteBatchResult {
            WriteBatchResult(outcomes: results.map { outcome in
                switch outcome.op {
                case "put": .put(version: outcome.version ?? 0)
                case "delete": .delete(existed: outcome.deleted ?? false)
                case "publish": .publish(eventID: outcome.id ?? "")
                default: .check
                }
            })
        }
    }

    /// `storage/delete`'s answer.
    public struct Deleted: Codable, Sendable, Equatable {
        public var deleted: Bool
        public init(deleted: Bool) { self.deleted = deleted }
    }

    /// `events/publish`'s answer: the new event's id.
    public struct Published: Codable, Sendable, Equatable {
        public var id: String
        public init(id: String) { self.id = id }
    }

    /// `GET context`'s answer.
    public struct CallContext: Codable, Sendable, Equatable {
        public var tenant, workspace, plugin: String
        public var caller: RemoteEnvelope.Context.CallerInfo
        public var grants: [String]
        public var config: [String: JSONValue]

        public init(tenant: String, workspace: String, plugin: String, caller: RemoteEnvelope.Context.CallerInfo, grants: [String], config: [String: JSONValue]) {
            self.tenant = tenant
            self.workspace = workspace
            self.plugin = plugin
            self.caller = caller
            self.grants = grants
            self.config = config
        }
    }

    /// Encodes a body as the protocol sends it: compact JSON with sorted keys, dates in ISO 8601.
    public static func encode(_ value: some Encodable) throws -> Data {
        try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try decoder.decode(type, from: data)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
