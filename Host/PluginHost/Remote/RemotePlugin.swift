import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PluginSDK
import Synchronization

/// A plugin served over HTTP by a process of its own (docs/remote-protocol.md): its runner makes each
/// call a signed HTTP request to the plugin's URL. The runtime routes, checks grants and bounds time
/// exactly as for a library plugin; this class adds the envelope, the SDK token, the circuit breaker
/// and the health state.
final class RemotePlugin: RunningPlugin {
    /// What `GET /v1/plugins/{id}` shows of a remote.
    struct Status: Sendable, Codable, Equatable {
        var url: String
        var timeoutMs: Int
        /// `healthy`, `unhealthy` or `unknown` (not checked yet).
        var health: String
        var lastError: String?
        var lastCheckedAt: Date?
        /// `closed`, `open` or `half-open`.
        var circuit: String
        var consecutiveFailures: Int
        var droppedEvents: Int
    }

    /// A failure of the remote itself (unreachable, timeout, garbage, refusal): counted by the breaker.
    struct Failure: Error {
        var error: HostError
    }

    /// What the remote is sent on behalf of: a call's tenant, workspace, caller, grants and config.
    typealias Context = CallContext

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: Data

        /// The protocol layer's refusal, if the remote refused the call itself: always a 401.
        var refusal: RemoteEnvelope.Refusal? {
            guard status == 401, let code = headers.first(name: RemoteEnvelope.errorHeader) else { return nil }
            let message = (try? RemoteWire.decode(RemoteWire.ErrorBody.self, from: body))?.error.message ?? ""
            return RemoteEnvelope.Refusal(RemoteEnvelope.Refusal.Code(rawValue: code) ?? .badContext, message)
        }

        var isSuccess: Bool { (200..<300).contains(status) }
    }

    private struct Health {
        var state = "unknown"
        var lastError: String?
        var lastCheckedAt: Date?
        var droppedEvents = 0
    }

    let manifest: PluginManifest
    let services: RemoteServices
    let baseURL: String
    let timeout: Duration
    /// The HTTP deadline bounds each call; the host's own bound, a second later, only backs it up.
    var callLimit: Duration { timeout + .seconds(1) }
    let eventDelivery: EventDeliveryPolicy
    let breaker: CircuitBreaker
    private let health = Mutex(Health())
    private let enablementSecrets = Mutex<[String: String]>([:])

    init(manifest: PluginManifest, services: RemoteServices) {
        self.manifest = manifest
        self.services = services
        self.baseURL = manifest.runtime.url ?? ""
        self.timeout = manifest.runtime.timeout ?? services.defaultTimeout
        self.breaker = CircuitBreaker(threshold: services.configuration.failureThreshold, cooldown: services.configuration.cooldown)
        // A remote may take its whole timeout to fail: its deliveries never hold the queue.
        self.eventDelivery = EventDeliveryPolicy(retry: services.configuration.eventRetry)
    }

    var id: String { manifest.id }

    var runStatus: RunStatus { RunStatus(remote: status) }

    var status: Status {
        let health = health.withLock { $0 }
        return Status(
            url: baseURL, timeoutMs: Int(timeout.milliseconds), health: health.state, lastError: health.lastError, lastCheckedAt: health.lastCheckedAt,
            circuit: breaker.position.rawValue, consecutiveFailures: breaker.consecutiveFailures, droppedEvents: health.droppedEvents
        )
    }

    // MARK: Hooks

    func handle(_ request: PluginRequest, context: CallContext, started: ContinuousClock.Instant) async throws -> PluginResponse {
        var headers = HTTPHeaders()
        for (name, value) in request.headers where Self.forwards(name) { headers.add(name: name, value: value) }
        let answer = try await call(
            .request, method: request.method, target: Self.target(path: request.path, query: request.query, raw: context.rawQuery), body: request.body,
            headers: headers, context: context, requestID: request.requestID
        )
        var responseHeaders: [String: String] = [:]
        for header in answer.headers where Self.passesBack(header.name) {
            let name = header.name.lowercased()
            responseHeaders[name] = responseHeaders[name].map { "\($0), \(header.value)" } ?? header.value
        }
        return PluginResponse(status: answer.status, headers: responseHeaders, body: answer.body)
    }

    /// One signed call per event, in order (the event router hands a remote one event a call).
    func handle(events: [PluginEvent], context: CallContext) async throws {
        for event in events {
            let body = try RemoteWire.encode(RemoteWire.Event(event))
            let answer = try await call(.event, method: "POST", target: RemoteEnvelope.CallKind.event.path, body: body, context: context, requestID: nil)
            guard answer.isSuccess else { throw Self.hookRefused(answer, pluginID: id, hook: "event") }
        }
    }

    /// Makes the workspace's enablement secret (kept when only grants or config change), stores it sealed,
    /// and delivers it in the `enabled` call signed with the install secret.
    func enabled(context: CallContext) async throws {
        let key = RemoteServices.enablementSecretKey(plugin: id, workspace: context.workspaceID)
        let secret: String
        var created = false
        if let existing = try await services.secret(key) {
            secret = existing
        } else {
            secret = RemoteEnvelope.newSecret()
            try await services.setSecret(key, secret)
            created = true
        }
        enablementSecrets.withLock { $0[context.workspaceID] = secret }
        do {
            let body = try RemoteWire.encode(RemoteWire.Enabled(enablementSecret: secret, resumed: false))
            let answer = try await call(
                .enabled, method: "POST", target: RemoteEnvelope.CallKind.enabled.path, body: body, context: context, requestID: nil,
                installSecret: try await installSecret()
            )
            guard answer.isSuccess else { throw Self.hookRefused(answer, pluginID: id, hook: "enabled") }
        } catch {
            // A first enablement that did not happen leaves no secret behind; a reconfigured one keeps its.
            if created {
                enablementSecrets.withLock { _ = $0.removeValue(forKey: context.workspaceID) }
                try? await services.setSecret(key, nil)
            }
            throw error
        }
    }

    /// Tells the remote, then forgets the workspace's secret whatever it answered.
    func disabled(context: CallContext) async throws {
        let forget = { [self] in
            enablementSecrets.withLock { _ = $0.removeValue(forKey: context.workspaceID) }
            try await services.setSecret(RemoteServices.enablementSecretKey(plugin: id, workspace: context.workspaceID), nil)
        }
        let answer: Answer
        do {
            answer = try await call(.disabled, method: "POST", target: RemoteEnvelope.CallKind.disabled.path, body: Data("{}".utf8), context: context, requestID: nil)
        } catch {
            try await forget()
            throw error
        }
        try await forget()
        guard answer.isSuccess else { throw Self.hookRefused(answer, pluginID: id, hook: "disabled") }
    }

    func shutdown() async {}

    // MARK: Calls

    /// One call through the circuit breaker: refused at once while the circuit is open; a failure of the
    /// remote itself counts against it, any answer of the plugin's closes it.
    func call(
        _ kind: RemoteEnvelope.CallKind, method: String, target: String, body: Data, headers: HTTPHeaders = [:], context: CallContext,
        requestID: String?, installSecret: String? = nil
    ) async throws -> Answer {
        if case .refused(let retryAfter) = breaker.allow() {
            // The last error stays in the plugin's status for admins: it may be about another tenant's call.
            throw HostError.pluginUnavailable(
                plugin: id, why: "its circuit is open after \(breaker.threshold) failures in a row; the next probe goes out in \(Self.seconds(retryAfter))")
        }
        do {
            let answer = try await exchange(kind, method: method, target: target, body: body, headers: headers, context: context, requestID: requestID, installSecret: installSecret)
            breaker.succeeded()
            return answer
        } catch let failure as Failure {
            breaker.failed()
            health.withLock { $0.lastError = APIError(failure.error).message }
            throw failure.error
        } catch {
            // Not the remote's failure (the store, a missing secret, cancellation): not counted.
            breaker.released()
            throw error
        }
    }

    /// Sends the call signed with the right secret. A remote that lost its secrets (restarted) answers
    /// `UNKNOWN_ENABLEMENT`: the secret is delivered again (`resumed`) and the call retried once; a
    /// `BAD_SIGNATURE` after another host re-enabled the workspace is retried with the stored secret.
    private func exchange(
        _ kind: RemoteEnvelope.CallKind, method: String, target: String, body: Data, headers: HTTPHeaders, context: CallContext,
        requestID: String?, installSecret: String?
    ) async throws -> Answer {
        let secret: String
        if kind == .enabled {
            guard let installSecret else { throw HostError.internalFailure("an enabled call of \(id) was made without the install secret") }
            secret = installSecret
        } else {
            secret = try await enablementSecret(workspace: context.workspaceID, fresh: false)
        }
        var answer = try await send(kind, method: method, target: target, body: body, headers: headers, context: context, requestID: requestID, secret: secret)
        if kind != .enabled, let refusal = answer.refusal, refusal.code == .unknownEnablement || refusal.code == .badSignature {
            let stored = try await enablementSecret(workspace: context.workspaceID, fresh: true)
            if refusal.code == .unknownEnablement {
                let resumed = try await deliverSecret(stored, resumed: true, context: context)
                if let refusal = resumed.refusal { throw Self.refused(refusal, pluginID: id) }
                guard resumed.isSuccess else { throw Self.hookRefused(resumed, pluginID: id, hook: "enabled (resumed)") }
            }
            if refusal.code == .unknownEnablement || stored != secret {
                answer = try await send(kind, method: method, target: target, body: body, headers: headers, context: context, requestID: requestID, secret: stored)
            }
        }
        if let refusal = answer.refusal { throw Self.refused(refusal, pluginID: id) }
        return answer
    }

    private func installSecret() async throws -> String {
        guard let secret = try await services.secret(RemoteServices.installSecretKey(plugin: id)) else {
            throw HostError.installSecretMissing(plugin: id)
        }
        return secret
    }

    /// The `enabled` call of a workspace whose secret the remote lost, inside the call that found out.
    private func deliverSecret(_ secret: String, resumed: Bool, context: CallContext) async throws -> Answer {
        let body = try RemoteWire.encode(RemoteWire.Enabled(enablementSecret: secret, resumed: resumed))
        return try await send(
            .enabled, method: "POST", target: RemoteEnvelope.CallKind.enabled.path, body: body, headers: [:], context: context, requestID: nil,
            secret: try await installSecret()
        )
    }

    private func enablementSecret(workspace: String, fresh: Bool) async throws -> String {
        if !fresh, let cached = enablementSecrets.withLock({ $0[workspace] }) { return cached }
        guard let stored = try await services.secret(RemoteServices.enablementSecretKey(plugin: id, workspace: workspace)) else {
            throw HostError.enablementSecretMissing(plugin: id, workspace: workspace)
        }
        enablementSecrets.withLock { $0[workspace] = stored }
        return stored
    }

    /// One signed HTTP exchange with a fresh call id, expiry and SDK token.
    private func send(
        _ kind: RemoteEnvelope.CallKind, method: String, target: String, body: Data, headers: HTTPHeaders, context: CallContext,
        requestID: String?, secret: String
    ) async throws -> Answer {
        let now = Date().timeIntervalSince1970
        let tokenExpires = Int64(now * 1000) + timeout.milliseconds + services.configuration.tokenGrace.milliseconds
        let grants = context.grants.permissions.map(\.description).sorted()
        let token = services.secrets.mintToken(HostSecrets.TokenClaims(
            tenant: context.tenantID, workspace: context.workspaceID, plugin: id, grants: grants, subject: context.caller.subject,
            role: context.caller.role.rawValue, expires: tokenExpires
        ))
        let envelopeContext = RemoteEnvelope.Context(
            call: kind, tenant: context.tenantID, workspace: context.workspaceID, plugin: id, requestId: requestID,
            caller: .init(subject: context.caller.subject, role: context.caller.role.rawValue), grants: grants, config: context.config,
            sdk: .init(url: services.sdkBaseURL, token: token, expires: tokenExpires / 1000), route: kind == .request ? context.route : nil
        )
        // Within the remote's horizon for expiries (10 minutes), whatever the timeout.
        let lifetime = min(timeout.milliseconds / 1000 + 30, RemoteEnvelope.maximumLifetime - 30)
        let envelope = try RemoteEnvelope.sign(
            secret: secret, context: envelopeContext, method: method, target: target, body: body, expires: Int64(now) + lifetime
        )
        var request = HTTPClientRequest(url: baseURL + target)
        request.method = HTTPMethod(rawValue: method)
        request.headers = headers
        // The host's own calls carry JSON; a request carries the caller's Content-Type, if any.
        if kind != .request { request.headers.replaceOrAdd(name: "content-type", value: "application/json") }
        for (name, value) in envelope.fields { request.headers.replaceOrAdd(name: name, value: value) }
        if !body.isEmpty || method != "GET" { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await services.httpClient.execute(request, deadline: .now() + .milliseconds(timeout.milliseconds))
            let answer = try await response.body.collect(upTo: services.maxResponseSize)
            return Answer(status: Int(response.status.code), headers: response.headers, body: Data(buffer: answer))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw Failure(error: .pluginTimeout(plugin: id, after: timeout))
        } catch is NIOTooManyBytesError {
            // The plugin's answer, not the remote failing: not counted against its circuit.
            throw HostError.responseTooLarge(plugin: id, bytes: nil, limit: services.maxResponseSize)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Failure(error: .pluginUnreachable(plugin: id, why: "failed: \(Self.describe(error))"))
        }
    }

    // MARK: Health

    /// `GET {url}/health`: any 2xx is healthy. A healthy remote whose circuit cooled down closes it.
    func checkHealth() async {
        let request = HTTPClientRequest(url: baseURL + "/health")
        let limit = min(timeout, .seconds(2))
        var failure: String?
        do {
            let response = try await services.httpClient.execute(request, deadline: .now() + .milliseconds(limit.milliseconds))
            _ = try await response.body.collect(upTo: 64 * 1024)
            if !(200..<300).contains(Int(response.status.code)) { failure = "GET /health answered \(response.status.code)" }
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            failure = "GET /health did not answer within \(Self.seconds(limit))"
        } catch {
            failure = "GET /health failed: \(Self.describe(error))"
        }
        if failure == nil { breaker.healthy() }
        let previous = health.withLock { health in
            let previous = health.state
            health.state = failure == nil ? "healthy" : "unhealthy"
            health.lastCheckedAt = Date()
            // A recovered remote shows no old error: `lastError` is about the remote as it is now.
            health.lastError = failure
            return previous
        }
        // Admins hear of a remote going down and coming back at the default log level, once each.
        if let failure, previous != "unhealthy" {
            services.logger.warning("remote plugin is down", metadata: ["plugin.id": "\(id)", "url": "\(baseURL)", "error": "\(failure)"])
        } else if failure == nil, previous == "unhealthy" {
            services.logger.notice("remote plugin is back", metadata: ["plugin.id": "\(id)", "url": "\(baseURL)"])
        }
    }

    /// An event delivery that exhausted its retries.
    func deliveryDropped(_ reason: String) {
        health.withLock {
            $0.droppedEvents += 1
            $0.lastError = reason
        }
    }

    // MARK: Helpers

    private static func refused(_ refusal: RemoteEnvelope.Refusal, pluginID: String) -> Failure {
        Failure(error: .pluginUnreachable(plugin: pluginID, why: "refused the host's call: \(refusal.code.rawValue) \(refusal.message); check the install secret it was given"))
    }

    /// A hook answered with a status other than 2xx, with the remote's code if its body had one.
    private static func hookRefused(_ answer: Answer, pluginID: String, hook: String) -> HostError {
        let detail = try? RemoteWire.decode(RemoteWire.ErrorBody.self, from: answer.body).error
        return .hookRefused(plugin: pluginID, hook: hook, status: answer.status, code: detail?.code, message: detail?.message)
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .remoteConnectionClosed: return "it closed the connection without an answer"
            case .connectTimeout: return "connecting timed out"
            default: return "\(error)"
            }
        }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if error is HTTPParserError || text.contains("HTTPParserError") { return "it answered something that is not HTTP/1.1" }
        return text
    }

    private static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f s", Double(duration.milliseconds) / 1000)
    }

    /// The caller's headers passed on to the remote: not credentials, hop-by-hop fields, or the envelope's.
    static func forwards(_ name: String) -> Bool {
        let name = name.lowercased()
        return !name.hasPrefix("x-plugin-host-") && !droppedHeaders.contains(name)
    }

    /// The remote's answer headers passed back: not hop-by-hop fields, the length or the protocol's.
    static func passesBack(_ name: String) -> Bool {
        let name = name.lowercased()
        return !name.hasPrefix("x-plugin-host-") && !droppedHeaders.contains(name) && name != "date" && name != "server"
    }

    private static let droppedHeaders: Set = [
        "authorization", "cookie", "host", "connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection",
        "te", "trailer", "transfer-encoding", "upgrade", "content-length", "expect",
    ]

    /// `/resources/{path}?{query}`: the path and the query as the caller sent them (`raw`); a request
    /// made without one (through the embedding API) has its query built from its values in name order.
    /// Every byte that may not stand where it is is escaped, and a `%` that does not start an escape is
    /// escaped too, so the HTTP client sends exactly the target that was signed (it would re-encode a
    /// malformed path, and the remote would see another target). An HTTP request line holds none of
    /// those, so a caller's query reaches the remote byte for byte: `b=a+b`, `flag`, `a=1;b=2`.
    static func target(path: String, query: [String: [String]], raw: String? = nil) -> String {
        var target = "/resources/" + escape(path, keeping: pathBytes)
        if let raw {
            if !raw.isEmpty { target += "?" + escape(raw, keeping: rawQueryBytes) }
            return target
        }
        let pairs = query.sorted { $0.key < $1.key }.flatMap { name, values in values.map { (name, $0) } }
        if !pairs.isEmpty {
            target += "?" + pairs.map { escape($0.0, keeping: queryBytes) + "=" + escape($0.1, keeping: queryBytes) }.joined(separator: "&")
        }
        return target
    }

    /// `text` with every byte not in `keeping` as `%XX`; a well-formed `%XX` already there is kept.
    private static func escape(_ text: String, keeping allowed: [Bool]) -> String {
        let bytes = Array(text.utf8)
        func isHex(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (65...70).contains(byte) || (97...102).contains(byte) }
        func keeps(_ index: Int) -> Bool {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") { return index + 2 < bytes.count && isHex(bytes[index + 1]) && isHex(bytes[index + 2]) }
            return allowed[Int(byte)]
        }
        if bytes.indices.allSatisfy(keeps) { return text }
        let digits = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 16)
        for index in bytes.indices {
            if keeps(index) {
                output.append(bytes[index])
            } else {
                output += [UInt8(ascii: "%"), digits[Int(bytes[index] >> 4)], digits[Int(bytes[index] & 15)]]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func byteSet(_ characters: String) -> [Bool] {
        var table = [Bool](repeating: false, count: 256)
        for byte in characters.utf8 { table[Int(byte)] = true }
        return table
    }
    private static let unreserved = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    private static let pathBytes = byteSet(unreserved + "!$&'()*+,;=:@/")
    private static let queryBytes = byteSet(unreserved)
    /// RFC 3986's query characters (`%` is kept where it starts an escape).
    private static let rawQueryBytes = byteSet(unreserved + "!$&'()*+,;=:@/?")
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
