import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PluginSDK

/// `/sdk/v1/...`: the SDK over HTTP for remote plugins (docs/remote-protocol.md, "The SDK over HTTP").
///
/// A request carries the SDK token of one call. The token names one plugin in one workspace and the
/// grants of that call; the services it reaches are the ones an in-process plugin's context holds
/// (``ScopedStorage``, ``ScopedEvents``), bound to that workspace, with the token's grants narrowed to
/// what the enablement grants now. Nothing here takes a workspace from the request.
struct SDKController {
    let runtime: PluginRuntime

    func addRoutes(to router: Router<HostRequestContext>) {
        let group = router.group("sdk/v1")
        group.get("context", use: context)
        group.post("storage/get", use: get)
        group.post("storage/put", use: put)
        group.post("storage/delete", use: delete)
        group.post("storage/list", use: list)
        group.post("events/publish", use: publish)
        group.post("batch", use: batch)
    }

    @Sendable func context(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            try .json(RemoteWire.CallContext(
                tenant: binding.tenantID, workspace: binding.workspaceID, plugin: binding.pluginID,
                caller: .init(subject: binding.claims.subject, role: binding.claims.role),
                grants: binding.grants.permissions.map(\.description).sorted(), config: binding.config
            ))
        }
    }

    @Sendable func get(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            let body = try await request.decodeJSON(RemoteWire.Key.self, limit: runtime.configuration.maxKeyBytes * 6 + 1024)
            guard let stored = try await binding.storage.get(body.key) else { throw HostError.valueNotFound }
            return try .json(RemoteWire.Entry(stored))
        }
    }

    @Sendable func put(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            let body = try await request.decodeJSON(RemoteWire.Put.self, limit: runtime.configuration.maxValueBytes / 3 * 4 + runtime.configuration.maxKeyBytes * 6 + 4096)
            guard let value = Data(base64Encoded: body.value) else { throw HostError.invalidInput("value must be base64") }
            let version = if let expected = body.ifVersion {
                try await binding.storage.put(body.key, value, ifVersion: expected)
            } else {
                try await binding.storage.put(body.key, value)
            }
            return try .json(RemoteWire.Version(version: version))
        }
    }

    @Sendable func delete(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            let body = try await request.decodeJSON(RemoteWire.Key.self, limit: runtime.configuration.maxKeyBytes * 6 + 1024)
            return try .json(RemoteWire.Deleted(deleted: try await binding.storage.delete(body.key)))
        }
    }

    @Sendable func list(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            let body = try await request.decodeJSON(RemoteWire.List.self, limit: runtime.configuration.maxKeyBytes * 12 + 1024)
            let page = try await binding.storage.list(prefix: body.prefix ?? "", limit: body.limit ?? 100, after: body.after)
            return try .json(RemoteWire.Page(entries: page.entries.map(RemoteWire.Entry.init), nextCursor: page.nextCursor))
        }
    }

    @Sendable func publish(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            let body = try await request.decodeJSON(RemoteWire.Publish.self, limit: runtime.configuration.maxBodySize / 3 * 4 + 4096)
            guard let payload = Data(base64Encoded: body.payload) else { throw HostError.invalidInput("payload must be base64") }
            let id = try await binding.events.publishEvent(type: body.type, payload: payload)
            return try .json(RemoteWire.Published(id: id), status: .accepted)
        }
    }

    /// A write batch: conditions, writes and events committed together (``PluginStorage/commit(_:)``).
    @Sendable func batch(_ request: Request, context: HostRequestContext) async throws -> Response {
        try await perform(request) { binding in
            let configuration = runtime.configuration
            let limit = ScopedStorage.maxBatchOperations * (configuration.maxKeyBytes * 6 + 256) + configuration.maxBodySize / 3 * 4 + 4096
            let body = try await request.decodeJSON(RemoteWire.Batch.self, limit: limit)
            let batch: WriteBatch
            switch body.batch() {
            case .success(let value): batch = value
            case .failure(let error): throw HostError.invalidInput(error.description)
            }
            return try .json(RemoteWire.BatchResult(try await binding.storage.commit(batch)))
        }
    }

    /// Authenticates the token, binds its services, and maps what they throw to the API's errors.
    private func perform(_ request: Request, _ body: (SDKBinding) async throws -> Response) async throws -> Response {
        guard runtime.isReady else { throw HostError.storeUnavailable }
        guard let token = request.headers.bearerToken else {
            throw HostError.sdkTokenMissing
        }
        let claims: SDKToken.Claims
        do {
            claims = try runtime.remote.secrets.verifyToken(token)
        } catch .expired {
            throw HostError.sdkTokenExpired
        } catch {
            throw HostError.sdkTokenInvalid
        }
        let binding = try runtime.registry.sdkBinding(claims)
        let started = ContinuousClock.now
        do {
            return try await body(binding)
        } catch let error as PluginError {
            // The same services an in-process plugin calls, with the same errors; a storage outage is the store's.
            throw HostError.passedOn(error, storeFailed: binding.storage.outages.occurred(since: started))
        }
    }
}
