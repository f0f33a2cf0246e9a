import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PluginSDK

/// A ``PluginContext`` for a plugin served by `serve-plugin`: identity, grants and config come from the
/// verified call context; storage and events are calls to the host's `/sdk/v1` with the call's token,
/// where the host applies the same checks as for an in-process plugin. Host errors come back as the
/// same ``PluginError``s, so the plugin cannot tell the difference.
struct RemoteContext: PluginContext {
    let context: RemoteEnvelope.Context
    let client: HTTPClient
    let outages: StoreOutages
    let hostLogger: Logger

    init(context: RemoteEnvelope.Context, client: HTTPClient, outages: StoreOutages, logger: Logger) {
        self.context = context
        self.client = client
        self.outages = outages
        self.hostLogger = logger
    }

    var tenantID: String { context.tenant }
    var workspaceID: String { context.workspace }
    var pluginID: String { context.plugin }
    var caller: Caller { Caller(subject: context.caller.subject, role: CallerRole(rawValue: context.caller.role) ?? .member) }
    var grants: PermissionSet { PermissionSet(context.grants.compactMap(Permission.init)) }
    var config: [String: JSONValue] { context.config }
    var storage: any PluginStorage { RemoteStorage(sdk: SDKClient(sdk: context.sdk, client: client, outages: outages)) }
    var events: any PluginEvents { RemoteEvents(sdk: SDKClient(sdk: context.sdk, client: client, outages: outages)) }
    var logger: any PluginLogger {
        SwiftLogPluginLogger(logger: hostLogger, pluginID: context.plugin, workspaceID: context.workspace, requestID: context.requestId)
    }
}

/// Calls of one SDK token against the host.
struct SDKClient: Sendable {
    let sdk: RemoteEnvelope.Context.SDK
    let client: HTTPClient
    let outages: StoreOutages

    /// POSTs (or GETs, without a body) `path` and decodes the answer; a host error becomes the
    /// ``PluginError`` an in-process plugin would have seen, `permission` naming what a 403 refused.
    func call<Answer: Decodable>(_ path: String, body: (some Encodable)?, as type: Answer.Type, permission: Permission, key: String = "") async throws -> Answer? {
        var request = HTTPClientRequest(url: sdk.url + "/sdk/v1/" + path)
        request.headers.add(name: "authorization", value: "Bearer \(sdk.token)")
        if let body {
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try RemoteWire.encode(body)))
        }
        let status: Int
        let data: Data
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            status = Int(response.status.code)
            data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        } catch {
            throw PluginError.unavailable("the host's SDK at \(sdk.url) cannot be reached: \(RemotePlugin.describe(error))")
        }
        if (200..<300).contains(status) { return try RemoteWire.decode(Answer.self, from: data) }
        let detail = (try? RemoteWire.decode(RemoteWire.ErrorBody.self, from: data))?.error
        let message = detail?.message ?? "the host answered \(status)"
        switch (status, detail?.code) {
        case (404, "NOT_FOUND"): return nil
        case (403, _): throw PluginError.permissionDenied(permission)
        case (409, _): throw PluginError.versionConflict(key: detail?.key ?? key, current: detail?.current ?? 0)
        case (413, _): throw PluginError.limitExceeded(message)
        case (400, _): throw PluginError.badRequest(message)
        case (503, "STORE_UNAVAILABLE"):
            // As in-process: the plugin sees PluginError.unavailable, and passed on it is the store's outage.
            outages.record()
            throw PluginError.unavailable("storage is unavailable; retry shortly")
        case (404, _): throw PluginError.notFound(message)
        default: throw PluginError.unavailable("the host refused the SDK call (\(status) \(detail?.code ?? "-")): \(message)")
        }
    }
}

struct RemoteStorage: PluginStorage {
    let sdk: SDKClient

    func get(_ key: String) async throws -> StoredValue? {
        try await sdk.call("storage/get", body: RemoteWire.Key(key: key), as: RemoteWire.Entry.self, permission: .storageRead, key: key)?.stored
    }

    func put(_ key: String, _ value: Data) async throws -> UInt64 {
        try await write(key, value, expected: nil)
    }

    func put(_ key: String, _ value: Data, ifVersion expected: UInt64) async throws -> UInt64 {
        try await write(key, value, expected: expected)
    }

    private func write(_ key: String, _ value: Data, expected: UInt64?) async throws -> UInt64 {
        let body = RemoteWire.Put(key: key, value: value, ifVersion: expected)
        guard let answer = try await sdk.call("storage/put", body: body, as: RemoteWire.Version.self, permission: .storageWrite, key: key) else {
            throw PluginError.unavailable("the host answered storage/put with 404")
        }
        return answer.version
    }

    func commit(_ batch: WriteBatch) async throws -> WriteBatchResult {
        guard let answer = try await sdk.call("batch", body: RemoteWire.Batch(batch), as: RemoteWire.BatchResult.self, permission: .storageWrite) else {
            throw PluginError.unavailable("the host answered batch with 404")
        }
        return answer.result
    }

    func delete(_ key: String) async throws -> Bool {
        try await sdk.call("storage/delete", body: RemoteWire.Key(key: key), as: RemoteWire.Deleted.self, permission: .storageWrite, key: key)?.deleted ?? false
    }

    func list(prefix: String, limit: Int, after cursor: String?) async throws -> StoragePage {
        let body = RemoteWire.List(prefix: prefix, limit: limit, after: cursor)
        guard let page = try await sdk.call("storage/list", body: body, as: RemoteWire.Page.self, permission: .storageRead) else {
            throw PluginError.unavailable("the host answered storage/list with 404")
        }
        return StoragePage(entries: page.entries.map(\.stored), nextCursor: page.nextCursor)
    }
}

struct RemoteEvents: PluginEvents {
    let sdk: SDKClient

    func publish(type: String, payload: Data) async throws {
        let permission = EventPattern(type).map(Permission.eventsPublish) ?? .eventsPublish(EventPattern("*")!)
        _ = try await sdk.call("events/publish", body: RemoteWire.Publish(type: type, payload: payload), as: RemoteWire.Published.self, permission: permission)
    }
}
