import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PluginSDK
import ServiceLifecycle
import Synchronization

/// `plugin-host serve-plugin`: runs a library plugin as a remote plugin. The library is checked and
/// loaded exactly as the host does (magic block first); calls are verified as docs/remote-protocol.md
/// says, and the plugin's context reaches the host's SDK over HTTP with each call's token.
public enum RemotePluginServer {
    /// Where the install secret comes from: a file read at every `enabled` call (so it may be written,
    /// or rotated, after the server started), or a fixed value.
    public enum InstallSecretSource: Sendable {
        case file(String)
        case value(String)
        case none

        func read() -> String? {
            switch self {
            case .file(let path):
                let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                return text?.isEmpty == false ? text : nil
            case .value(let secret): return secret.isEmpty ? nil : secret
            case .none: return nil
            }
        }
    }

    /// Loads the library and builds the server; `onServerRunning` receives the bound port.
    public static func build(
        libraryPath: String, hostname: String, port: Int, installSecret: InstallSecretSource, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let loader = PluginLibraryLoader()
        let inspection = try loader.inspect(path: libraryPath)
        let plugin = try loader.load(path: libraryPath, inspection: inspection)
        let client = HTTPClient.forRemotePlugins(connectTimeout: .seconds(2), connections: 64)
        let responder = RemotePluginResponder(
            plugin: plugin, pluginID: inspection.magic.pluginID, version: inspection.magic.pluginVersion, installSecret: installSecret, client: client,
            logger: logger
        )
        logger.info("serving plugin", metadata: ["plugin.id": "\(inspection.magic.pluginID)", "plugin.version": "\(inspection.magic.pluginVersion)"])
        return Application(
            responder: responder,
            configuration: .init(address: .hostname(hostname, port: port), serverName: "plugin-host-remote"),
            services: [ClientShutdown(client: client, plugin: plugin)],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// Shuts the SDK client down, and calls the plugin's shutdown hook, after the server drained.
    struct ClientShutdown: Service {
        let client: HTTPClient
        let plugin: any Plugin

        func run() async throws {
            try? await gracefulShutdown()
            await plugin.shutdown()
            try await client.shutdown()
        }
    }
}

/// Enablement secrets by workspace, learned from `enabled` calls; kept in memory only (after a restart
/// the host delivers them again).
final class EnablementSecrets: Sendable {
    private let secrets = Mutex<[String: String]>([:])

    subscript(workspace: String) -> String? {
        get { secrets.withLock { $0[workspace] } }
    }

    func set(_ secret: String?, for workspace: String) {
        secrets.withLock { $0[workspace] = secret }
    }
}

/// Call ids seen, kept until their expiry, so a replayed call is refused.
final class ReplayCache: Sendable {
    private let seen = Mutex<[String: Int64]>([:])

    /// Records `callID`; false if it was already there.
    func remember(_ callID: String, until expires: Int64, now: Int64 = Int64(Date().timeIntervalSince1970)) -> Bool {
        seen.withLock { seen in
            if seen.count >= 4096 && seen.count.isMultiple(of: 1024) {
                seen = seen.filter { $0.value >= now }
            }
            return seen.updateValue(expires, forKey: callID) == nil
        }
    }
}

/// The remote side of the protocol for one plugin: health, the three lifecycle and event calls, and
/// requests under `/resources/`.
struct RemotePluginResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let plugin: any Plugin
    let pluginID: String
    let version: String
    let installSecret: RemotePluginServer.InstallSecretSource
    let client: HTTPClient
    let logger: Logger
    let replay = ReplayCache()
    let secrets = EnablementSecrets()
    let maxBodySize = 4 << 20

    func respond(to request: Request, context: Context) async throws -> Response {
        let target = request.head.path ?? "/"
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        if path == "/health" && request.method == .get {
            struct Health: Encodable {
                var status = "ok"
                var plugin: [String: String]
            }
            return Self.json(Health(plugin: ["id": pluginID, "version": version]))
        }
        let kind: RemoteEnvelope.CallKind
        if path.hasPrefix("/resources/") {
            kind = .request
        } else if request.method == .post, let lifecycle = [RemoteEnvelope.CallKind.enabled, .disabled, .event].first(where: { $0.path == path }) {
            kind = lifecycle
        } else {
            return Self.error(.notFound, "NOT_FOUND", "\(request.method.rawValue) \(path) is not part of the remote plugin protocol")
        }
        let body: Data
        do {
            body = Data(buffer: try await request.body.collect(upTo: maxBodySize))
        } catch {
            return Self.error(.contentTooLarge, "PAYLOAD_TOO_LARGE", "the body is larger than \(maxBodySize) bytes")
        }
        let callContext: RemoteEnvelope.Context
        do {
            // The names asked for are the envelope's own header names, constants that are valid field names.
            callContext = try RemoteEnvelope.verify(
                method: request.method.rawValue, target: target, headers: { name in request.headers[HTTPField.Name(name)!] }, body: body,
                expectedPlugin: pluginID, expectedCall: kind,
                secretFor: { kind, workspace in kind == .enabled ? installSecret.read() : secrets[workspace] },
                remember: { replay.remember($0, until: $1) }
            )
        } catch {
            logger.warning("call refused", metadata: ["code": "\(error.code.rawValue)", "reason": "\(error.message)"])
            var response = Self.error(.unauthorized, error.code.rawValue, error.message)
            response.headers[HTTPField.Name(RemoteEnvelope.errorHeader)!] = error.code.rawValue
            return response
        }
        // Storage outages the host reports to this call's SDK calls.
        let outages = StoreOutages()
        let pluginContext = RemoteContext(context: callContext, client: client, outages: outages, logger: logger)
        let started = ContinuousClock.now
        switch kind {
        case .request:
            return await handleRequest(request, path: String(path.dropFirst("/resources/".count)), body: body, context: pluginContext, started: started)
        case .enabled:
            guard let enabled = try? RemoteWire.decode(RemoteWire.Enabled.self, from: body), enabled.enablementSecret.hasPrefix("phk_") else {
                return Self.error(.badRequest, "BAD_REQUEST", "the enabled call's body must be {\"enablementSecret\": \"phk_…\", \"resumed\": bool}")
            }
            if enabled.resumed != true {
                do {
                    try await plugin.enabled(context: pluginContext)
                } catch {
                    return failure(error, hook: "enabled", started: started, outages: outages)
                }
            }
            secrets.set(enabled.enablementSecret, for: callContext.workspace)
            return Self.json([String: String]())
        case .disabled:
            defer { secrets.set(nil, for: callContext.workspace) }
            do {
                try await plugin.disabled(context: pluginContext)
            } catch {
                return failure(error, hook: "disabled", started: started, outages: outages)
            }
            return Self.json([String: String]())
        case .event:
            guard let wire = try? RemoteWire.decode(RemoteWire.Event.self, from: body), let event = wire.pluginEvent, event.workspaceID == callContext.workspace
            else { return Self.error(.badRequest, "BAD_REQUEST", "the event call's body is not an event of this workspace") }
            do {
                // As the host does in-process: through handle(events:), whose default calls handle(event:).
                try await plugin.handle(events: [event], context: pluginContext)
            } catch {
                return failure(error, hook: "event", started: started, outages: outages)
            }
            return Self.json([String: String]())
        }
    }

    private func handleRequest(_ request: Request, path: String, body: Data, context: RemoteContext, started: ContinuousClock.Instant) async -> Response {
        var query: [String: [String]] = [:]
        for (name, value) in request.uri.queryParameters { query[String(name), default: []].append(String(value)) }
        var headers: [String: String] = [:]
        for field in request.headers where !field.name.canonicalName.hasPrefix("x-plugin-host-") {
            headers[field.name.canonicalName] = field.value
        }
        // The route the host matched, from the signed context, for `request.parameters`.
        if let route = context.context.route { headers[PluginRequest.routeHeader] = route }
        let pluginRequest = PluginRequest(
            method: request.method.rawValue, path: path.split(separator: "/").joined(separator: "/"), query: query, headers: headers, body: body,
            requestID: context.context.requestId ?? ""
        )
        do {
            let response = try await plugin.handle(pluginRequest, context: context)
            guard (100...599).contains(response.status) else {
                logger.error("plugin answered with an invalid status", metadata: ["status": "\(response.status)"])
                return Self.error(.internalServerError, "PLUGIN_ERROR", "the plugin answered with an invalid status")
            }
            var fields = HTTPFields()
            for (name, value) in response.headers {
                // X-Plugin-Host-* belongs to the protocol: a plugin's answer never carries it.
                guard !name.lowercased().hasPrefix("x-plugin-host-"), let name = HTTPField.Name(name),
                      name != .contentLength, name != .transferEncoding, name != .connection
                else { continue }
                fields.append(HTTPField(name: name, value: value))
            }
            return Response(status: .init(code: response.status), headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body)))
        } catch {
            return failure(error, hook: "request", started: started, outages: context.outages)
        }
    }

    /// A ``PluginError`` keeps its status and code, as in-process (a storage outage passed on is the
    /// store's); anything else is 500 `PLUGIN_ERROR`.
    func failure(_ error: any Error, hook: String, started: ContinuousClock.Instant, outages: StoreOutages) -> Response {
        if let error = error as? PluginError { return Self.error(APIError(.passedOn(error, storeFailed: outages.occurred(since: started)))) }
        logger.error("plugin threw", metadata: ["hook": "\(hook)", "error": "\(String(reflecting: error))"])
        return Self.error(.internalServerError, "PLUGIN_ERROR", "the plugin failed while handling the \(hook) call; the error is logged")
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        error(APIError(status, code, message))
    }

    /// The error body of docs/remote-protocol.md: `{"error": {"code", "message", "current"?}}`.
    static func error(_ error: APIError) -> Response {
        json(RemoteWire.ErrorBody(.init(code: error.code, message: error.message, current: error.current)), status: Int(error.status.code))
    }

    static func json(_ value: some Encodable, status: Int = 200) -> Response {
        let data = (try? RemoteWire.encode(value)) ?? Data("{}".utf8)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
