import Foundation
import PluginSDK

/// The frames a host and a plugin worker exchange over the socket pair the worker inherits (docs/workers.md).
///
/// A frame is `length: u32` then `length` bytes: `kind: u8`, `call: u64`, the kind's payload. Integers
/// are little-endian; a string or a byte run is `count: u32` then its bytes; a map is `count: u32` then
/// its pairs. The host numbers the calls it issues; the worker answers with the same number, and names
/// it in every SDK call made on that call's behalf, so the host knows which workspace and grants apply.
/// The worker numbers its own SDK calls, and the host answers them with that number.
///
/// Decoding never traps: a count past the frame's end, an unknown kind or a string that is not UTF-8 is
/// a ``WorkerWire/Malformed`` error, and a frame longer than the reader's limit is refused before it is
/// buffered.
public enum WorkerWire {
    /// The version of the frames below. A worker and a host of different versions refuse each other at
    /// the handshake, with a message naming both.
    public static let version: UInt16 = 4
    /// The file descriptor the worker finds its end of the socket pair on: its standard input.
    public static let socketDescriptor: Int32 = 0
    /// `kind` and `call`, after the length.
    public static let headerBytes = 9

    public enum Kind: UInt8, Sendable {
        // Host to worker.
        case hello = 1
        case bind = 2
        case unbind = 3
        case request = 4
        case events = 5
        case hook = 6
        case sdkReply = 7
        case ping = 8
        case shutdown = 9
        // Worker to host.
        case ready = 20
        case loadFailed = 21
        case response = 22
        case failure = 23
        case done = 24
        case sdk = 25
        case log = 26
        case pong = 27
    }

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    // MARK: Payloads

    /// The host's first frame: what to load, the frame limit of the host's reader, and the limits the
    /// worker sets on itself before it loads the library (0: none).
    public struct Hello: Sendable, Hashable {
        public var version: UInt16
        public var libraryPath: String
        public var pluginID: String
        public var pluginVersion: String
        public var maxFrameBytes: UInt32
        public var memoryBytes: UInt64
        public var openFiles: UInt32

        public init(
            version: UInt16 = WorkerWire.version, libraryPath: String, pluginID: String, pluginVersion: String, maxFrameBytes: UInt32,
            memoryBytes: UInt64 = 0, openFiles: UInt32 = 0
        ) {
            self.version = version
            self.libraryPath = libraryPath
            self.pluginID = pluginID
            self.pluginVersion = pluginVersion
            self.maxFrameBytes = maxFrameBytes
            self.memoryBytes = memoryBytes
            self.openFiles = openFiles
        }
    }

    /// The worker's answer to ``Hello`` once the plugin is loaded.
    public struct Ready: Sendable, Hashable {
        public var version: UInt16
        public var pid: Int32
        public var sdkVersion: String

        public init(version: UInt16 = WorkerWire.version, pid: Int32, sdkVersion: String) {
            self.version = version
            self.pid = pid
            self.sdkVersion = sdkVersion
        }
    }

    /// What one enablement shares across its calls, sent once per connection before its first call.
    public struct Binding: Sendable, Hashable {
        public var id: UInt32
        public var tenantID: String
        public var workspaceID: String
        public var grants: [String]
        /// The enablement's config as a JSON object.
        public var config: Data

        public init(id: UInt32, tenantID: String, workspaceID: String, grants: [String], config: Data) {
            self.id = id
            self.tenantID = tenantID
            self.workspaceID = workspaceID
            self.grants = grants
            self.config = config
        }
    }

    public struct Request: Sendable {
        public var binding: UInt32
        public var caller: Caller
        public var request: PluginRequest

        public init(binding: UInt32, caller: Caller, request: PluginRequest) {
            self.binding = binding
            self.caller = caller
            self.request = request
        }
    }

    /// Events of the binding's workspace for one call of ``Plugin/handle(events:context:)``, in order.
    public struct Events: Sendable {
        public var binding: UInt32
        public var caller: Caller
        public var events: [PluginEvent]

        public init(binding: UInt32, caller: Caller, events: [PluginEvent]) {
            self.binding = binding
            self.caller = caller
            self.events = events
        }
    }

    public enum HookName: UInt8, Sendable {
        case enabled = 0
        case disabled = 1
    }

    public struct Hook: Sendable {
        public var binding: UInt32
        public var hook: HookName
        public var caller: Caller

        public init(binding: UInt32, hook: HookName, caller: Caller) {
            self.binding = binding
            self.hook = hook
            self.caller = caller
        }
    }

    /// Why a call failed in the worker: the plugin's own ``PluginError``, or anything else it threw
    /// (described, as the host logs it and never shows it).
    public enum Failure: Sendable, Equatable {
        case plugin(PluginError)
        case thrown(String)
        /// The plugin's answer would not fit a frame; its body's size.
        case responseTooLarge(bytes: UInt64)
    }

    /// A plugin's SDK call, made on behalf of the host's call that the frame names.
    public enum SDKCall: Sendable, Equatable {
        case get(key: String)
        case put(key: String, value: Data, ifVersion: UInt64?)
        case delete(key: String)
        case list(prefix: String, limit: UInt32, after: String?)
        case publish(type: String, payload: Data)
        case commit(WriteBatch)
    }

    /// The host's answer to an ``SDKCall``.
    public enum SDKResult: Sendable, Equatable {
        case value(StoredValue?)
        case version(UInt64)
        case deleted(Bool)
        case page(StoragePage)
        case published
        case failed(PluginError)
        case committed(WriteBatchResult)
    }

    public struct Log: Sendable, Equatable {
        public var level: PluginLogLevel
        public var message: String
        public var metadata: [String: String]

        public init(level: PluginLogLevel, message: String, metadata: [String: String]) {
            self.level = level
            self.message = message
            self.metadata = metadata
        }
    }

    // MARK: Frames

    /// One frame's header and payload, as read.
    public struct Frame: Sendable {
        public var kind: Kind
        public var call: UInt64
        public var payload: [UInt8]

        public init(kind: Kind, call: UInt64, payload: [UInt8]) {
            self.kind = kind
            self.call = call
            self.payload = payload
        }
    }

    /// The length of the frame starting at `bytes[offset...]`, or `nil` while its length field is incomplete.
    /// Throws when the length is below the header or above `limit`.
    public static func frameLength(_ bytes: UnsafeRawBufferPointer, limit: UInt32) throws(Malformed) -> Int? {
        guard bytes.count >= 4 else { return nil }
        let length = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        guard length >= UInt32(headerBytes) else { throw Malformed("a frame of \(length) bytes is shorter than its header (\(headerBytes))") }
        guard length <= limit else { throw Malformed("a frame of \(length) bytes is over the limit of \(limit)") }
        return 4 + Int(length)
    }

    /// Decodes one whole frame (its length field included), as ``frameLength(_:limit:)`` delimited it.
    public static func frame(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> Frame {
        var reader = Reader(bytes)
        let length = try reader.u32()
        guard Int(length) == reader.remaining else { throw Malformed("the frame's length field says \(length), it has \(reader.remaining)") }
        let rawKind = try reader.u8()
        guard let kind = Kind(rawValue: rawKind) else { throw Malformed("unknown frame kind \(rawKind)") }
        let call = try reader.u64()
        return Frame(kind: kind, call: call, payload: Array(reader.rest()))
    }

    /// A whole frame, length field included.
    public static func encode(_ kind: Kind, call: UInt64, _ payload: (inout Writer) -> Void = { _ in }) -> [UInt8] {
        var writer = Writer()
        writer.bytes.reserveCapacity(64)
        writer.u32(0)
        writer.u8(kind.rawValue)
        writer.u64(call)
        payload(&writer)
        let length = UInt32(truncatingIfNeeded: writer.bytes.count - 4)
        writer.bytes[0] = UInt8(truncatingIfNeeded: length)
        writer.bytes[1] = UInt8(truncatingIfNeeded: length >> 8)
        writer.bytes[2] = UInt8(truncatingIfNeeded: length >> 16)
        writer.bytes[3] = UInt8(truncatingIfNeeded: length >> 24)
        return writer.bytes
    }

    // MARK: Writing

    public struct Writer: Sendable {
        public var bytes: [UInt8] = []

        public init() {}

        public mutating func u8(_ value: UInt8) { bytes.append(value) }
        public mutating func u16(_ value: UInt16) { append(littleEndian: value) }
        public mutating func u32(_ value: UInt32) { append(littleEndian: value) }
        public mutating func u64(_ value: UInt64) { append(littleEndian: value) }
        public mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

        private mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        /// Counts are `u32`: a frame is smaller than 4 GiB, so no count written here can be larger.
        public mutating func data(_ value: some Collection<UInt8>) {
            u32(UInt32(truncatingIfNeeded: value.count))
            bytes.append(contentsOf: value)
        }

        public mutating func string(_ value: String) { data(value.utf8) }

        public mutating func optionalString(_ value: String?) {
            bool(value != nil)
            if let value { string(value) }
        }

        public mutating func strings(_ values: [String]) {
            u32(UInt32(truncatingIfNeeded: values.count))
            for value in values { string(value) }
        }

        public mutating func map(_ values: [String: String]) {
            u32(UInt32(truncatingIfNeeded: values.count))
            for (key, value) in values {
                string(key)
                string(value)
            }
        }

        public mutating func caller(_ caller: Caller) {
            string(caller.subject)
            string(caller.role.rawValue)
        }

        public mutating func pluginError(_ error: PluginError) {
            switch error {
            case .permissionDenied(let permission): u8(0); string(permission.description)
            case .versionConflict(let key, let current): u8(1); string(key); u64(current)
            case .badRequest(let reason): u8(2); string(reason)
            case .notFound(let what): u8(3); string(what)
            case .limitExceeded(let reason): u8(4); string(reason)
            case .unavailable(let reason): u8(5); string(reason)
            }
        }

        public mutating func stored(_ value: StoredValue) {
            string(value.key)
            data(value.value)
            u64(value.version)
        }
    }

    // MARK: Reading

    /// A bounds-checked reader: every read past the end throws.
    public struct Reader {
        private let bytes: UnsafeRawBufferPointer
        private var offset = 0

        public init(_ bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        public var remaining: Int { bytes.count - offset }

        public mutating func rest() -> UnsafeRawBufferPointer.SubSequence {
            defer { offset = bytes.count }
            return bytes[offset...]
        }

        public func end() throws(Malformed) {
            guard remaining == 0 else { throw Malformed("\(remaining) bytes after the end of the payload") }
        }

        private mutating func take(_ count: Int) throws(Malformed) -> UnsafeRawBufferPointer.SubSequence {
            guard count >= 0, count <= remaining else { throw Malformed("a field of \(count) bytes runs past the end of the frame (\(remaining) left)") }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }

        private mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws(Malformed) -> T {
            let slice = try take(MemoryLayout<T>.size)
            var value: T = 0
            for (index, byte) in slice.enumerated() { value |= T(byte) << (index * 8) }
            return value
        }

        public mutating func u8() throws(Malformed) -> UInt8 { try integer(UInt8.self) }
        public mutating func u16() throws(Malformed) -> UInt16 { try integer(UInt16.self) }
        public mutating func u32() throws(Malformed) -> UInt32 { try integer(UInt32.self) }
        public mutating func u64() throws(Malformed) -> UInt64 { try integer(UInt64.self) }
        public mutating func i32() throws(Malformed) -> Int32 { Int32(bitPattern: try u32()) }

        public mutating func bool() throws(Malformed) -> Bool {
            switch try u8() {
            case 0: false
            case 1: true
            case let other: throw Malformed("\(other) is not a boolean")
            }
        }

        private mutating func count() throws(Malformed) -> Int {
            let count = Int(try u32())
            // Every element takes at least one byte, so a count above what is left cannot be right,
            // and nothing is reserved for it.
            guard count <= remaining else { throw Malformed("a count of \(count) runs past the end of the frame (\(remaining) bytes left)") }
            return count
        }

        public mutating func data() throws(Malformed) -> Data { Data(try take(try count())) }

        public mutating func string() throws(Malformed) -> String {
            let slice = try take(try count())
            guard let text = String(validating: slice, as: UTF8.self) else { throw Malformed("a string that is not UTF-8") }
            return text
        }

        public mutating func optionalString() throws(Malformed) -> String? {
            try bool() ? try string() : nil
        }

        public mutating func strings() throws(Malformed) -> [String] {
            let count = try count()
            var values: [String] = []
            // Each string takes at least its 4-byte count: reserve no more than the bytes left can hold.
            values.reserveCapacity(min(count, remaining / 4))
            for _ in 0..<count { values.append(try string()) }
            return values
        }

        public mutating func map() throws(Malformed) -> [String: String] {
            let count = try count()
            var values: [String: String] = [:]
            values.reserveCapacity(min(count, remaining / 8))
            for _ in 0..<count {
                let key = try string()
                values[key] = try string()
            }
            return values
        }

        public mutating func caller() throws(Malformed) -> Caller {
            let subject = try string()
            let role = try string()
            guard let parsed = CallerRole(rawValue: role) else { throw Malformed("unknown caller role \(role)") }
            return Caller(subject: subject, role: parsed)
        }

        public mutating func pluginError() throws(Malformed) -> PluginError {
            switch try u8() {
            case 0:
                let name = try string()
                guard let permission = Permission(name) else { throw Malformed("unknown permission \(name)") }
                return .permissionDenied(permission)
            case 1: return .versionConflict(key: try string(), current: try u64())
            case 2: return .badRequest(try string())
            case 3: return .notFound(try string())
            case 4: return .limitExceeded(try string())
            case 5: return .unavailable(try string())
            case let other: throw Malformed("unknown plugin error \(other)")
            }
        }

        public mutating func stored() throws(Malformed) -> StoredValue {
            StoredValue(key: try string(), value: try data(), version: try u64())
        }
    }
}

// MARK: Payload codecs

extension WorkerWire {
    public static func encode(_ hello: Hello) -> [UInt8] {
        encode(.hello, call: 0) { writer in
            writer.u16(hello.version)
            writer.string(hello.libraryPath)
            writer.string(hello.pluginID)
            writer.string(hello.pluginVersion)
            writer.u32(hello.maxFrameBytes)
            writer.u64(hello.memoryBytes)
            writer.u32(hello.openFiles)
        }
    }

    public static func hello(_ payload: [UInt8]) throws(Malformed) -> Hello {
        try decode(payload) { reader throws(Malformed) in
            // The version first, so that a worker of another version can still say which it met.
            let version = try reader.u16()
            guard version == WorkerWire.version else {
                _ = reader.rest()  // another version's fields: only its number is read
                return Hello(version: version, libraryPath: "", pluginID: "", pluginVersion: "", maxFrameBytes: 0)
            }
            return Hello(
                version: version, libraryPath: try reader.string(), pluginID: try reader.string(), pluginVersion: try reader.string(), maxFrameBytes: try reader.u32(),
                memoryBytes: try reader.u64(), openFiles: try reader.u32())
        }
    }

    public static func encode(_ ready: Ready) -> [UInt8] {
        encode(.ready, call: 0) { writer in
            writer.u16(ready.version)
            writer.u32(UInt32(bitPattern: ready.pid))
            writer.string(ready.sdkVersion)
        }
    }

    public static func ready(_ payload: [UInt8]) throws(Malformed) -> Ready {
        try decode(payload) { reader throws(Malformed) in
            let version = try reader.u16()
            guard version == WorkerWire.version else {
                _ = reader.rest()
                return Ready(version: version, pid: 0, sdkVersion: "")
            }
            return Ready(version: version, pid: try reader.i32(), sdkVersion: try reader.string())
        }
    }

    public static func encode(_ binding: Binding) -> [UInt8] {
        encode(.bind, call: 0) { writer in
            writer.u32(binding.id)
            writer.string(binding.tenantID)
            writer.string(binding.workspaceID)
            writer.strings(binding.grants)
            writer.data(binding.config)
        }
    }

    public static func binding(_ payload: [UInt8]) throws(Malformed) -> Binding {
        try decode(payload) { reader throws(Malformed) in
            Binding(id: try reader.u32(), tenantID: try reader.string(), workspaceID: try reader.string(), grants: try reader.strings(), config: try reader.data())
        }
    }

    public static func encode(_ request: Request, call: UInt64) -> [UInt8] {
        encode(.request, call: call) { writer in
            writer.u32(request.binding)
            writer.caller(request.caller)
            let request = request.request
            writer.string(request.requestID)
            writer.string(request.method)
            writer.string(request.path)
            writer.u32(UInt32(truncatingIfNeeded: request.query.count))
            for (name, values) in request.query {
                writer.string(name)
                writer.strings(values)
            }
            writer.map(request.headers)
            writer.data(request.body)
        }
    }

    public static func request(_ payload: [UInt8]) throws(Malformed) -> Request {
        try decode(payload) { reader throws(Malformed) in
            let binding = try reader.u32()
            let caller = try reader.caller()
            let requestID = try reader.string()
            let method = try reader.string()
            let path = try reader.string()
            let queryCount = Int(try reader.u32())
            guard queryCount <= reader.remaining else { throw Malformed("a query of \(queryCount) names runs past the end of the frame") }
            var query: [String: [String]] = [:]
            for _ in 0..<queryCount {
                let name = try reader.string()
                query[name] = try reader.strings()
            }
            let headers = try reader.map()
            let body = try reader.data()
            return Request(binding: binding, caller: caller, request: PluginRequest(method: method, path: path, query: query, headers: headers, body: body, requestID: requestID))
        }
    }

    public static func encode(_ response: PluginResponse, call: UInt64) -> [UInt8] {
        encode(.response, call: call) { writer in
            writer.u32(UInt32(truncatingIfNeeded: response.status))
            writer.map(response.headers)
            writer.data(response.body)
        }
    }

    public static func response(_ payload: [UInt8]) throws(Malformed) -> PluginResponse {
        try decode(payload) { reader throws(Malformed) in
            // The status is passed on as it came: the host checks its range like an in-process plugin's.
            let status = Int(try reader.u32())
            return PluginResponse(status: status, headers: try reader.map(), body: try reader.data())
        }
    }

    public static func encode(_ delivery: Events, call: UInt64) -> [UInt8] {
        encode(.events, call: call) { writer in
            writer.u32(delivery.binding)
            writer.caller(delivery.caller)
            writer.u32(UInt32(delivery.events.count))
            for event in delivery.events {
                writer.string(event.id)
                writer.string(event.type)
                writer.string(event.workspaceID)
                writer.string(event.sourcePluginID)
                writer.u64(event.occurredAt.timeIntervalSince1970.bitPattern)
                writer.data(event.payload)
            }
        }
    }

    public static func events(_ payload: [UInt8]) throws(Malformed) -> Events {
        try decode(payload) { reader throws(Malformed) in
            let binding = try reader.u32()
            let caller = try reader.caller()
            // Each event takes at least 28 bytes (five counts and the time): reserve no more than fits.
            let count = Int(try reader.u32())
            guard count <= reader.remaining / 28 else { throw Malformed("\(count) events cannot fit in the \(reader.remaining) bytes left") }
            var events: [PluginEvent] = []
            events.reserveCapacity(count)
            for _ in 0..<count {
                let id = try reader.string()
                let type = try reader.string()
                let workspace = try reader.string()
                let source = try reader.string()
                let seconds = Double(bitPattern: try reader.u64())
                guard seconds.isFinite else { throw Malformed("an event time that is not a finite number") }
                let body = try reader.data()
                events.append(PluginEvent(
                    id: id, type: type, workspaceID: workspace, sourcePluginID: source, occurredAt: Date(timeIntervalSince1970: seconds), payload: body))
            }
            return Events(binding: binding, caller: caller, events: events)
        }
    }

    public static func encode(_ hook: Hook, call: UInt64) -> [UInt8] {
        encode(.hook, call: call) { writer in
            writer.u32(hook.binding)
            writer.u8(hook.hook.rawValue)
            writer.caller(hook.caller)
        }
    }

    public static func hook(_ payload: [UInt8]) throws(Malformed) -> Hook {
        try decode(payload) { reader throws(Malformed) in
            let binding = try reader.u32()
            let raw = try reader.u8()
            guard let name = HookName(rawValue: raw) else { throw Malformed("unknown hook \(raw)") }
            return Hook(binding: binding, hook: name, caller: try reader.caller())
        }
    }

    public static func encode(_ failure: Failure, call: UInt64) -> [UInt8] {
        encode(.failure, call: call) { writer in
            switch failure {
            case .plugin(let error): writer.u8(0); writer.pluginError(error)
            case .thrown(let description): writer.u8(1); writer.string(description)
            case .responseTooLarge(let bytes): writer.u8(2); writer.u64(bytes)
            }
        }
    }

    public static func failure(_ payload: [UInt8]) throws(Malformed) -> Failure {
        try decode(payload) { reader throws(Malformed) in
            switch try reader.u8() {
            case 0: return .plugin(try reader.pluginError())
            case 1: return .thrown(try reader.string())
            case 2: return .responseTooLarge(bytes: try reader.u64())
            case let other: throw Malformed("unknown failure \(other)")
            }
        }
    }

    /// An SDK call; `call` is the worker's number for it, `onBehalfOf` the host's call it is made for.
    public static func encode(_ sdk: SDKCall, call: UInt64, onBehalfOf hostCall: UInt64) -> [UInt8] {
        encode(.sdk, call: call) { writer in
            writer.u64(hostCall)
            switch sdk {
            case .get(let key): writer.u8(0); writer.string(key)
            case .put(let key, let value, let expected):
                writer.u8(1); writer.string(key); writer.data(value)
                writer.bool(expected != nil)
                writer.u64(expected ?? 0)
            case .delete(let key): writer.u8(2); writer.string(key)
            case .list(let prefix, let limit, let after): writer.u8(3); writer.string(prefix); writer.u32(limit); writer.optionalString(after)
            case .publish(let type, let payload): writer.u8(4); writer.string(type); writer.data(payload)
            case .commit(let batch):
                writer.u8(5)
                writer.u32(UInt32(truncatingIfNeeded: batch.operations.count))
                for operation in batch.operations {
                    switch operation {
                    case .put(let key, let value, let expected):
                        writer.u8(0); writer.string(key); writer.data(value); writer.bool(expected != nil); writer.u64(expected ?? 0)
                    case .delete(let key, let expected):
                        writer.u8(1); writer.string(key); writer.bool(expected != nil); writer.u64(expected ?? 0)
                    case .check(let key, let version): writer.u8(2); writer.string(key); writer.u64(version)
                    case .publish(let type, let payload): writer.u8(3); writer.string(type); writer.data(payload)
                    }
                }
            }
        }
    }

    public static func sdk(_ payload: [UInt8]) throws(Malformed) -> (onBehalfOf: UInt64, call: SDKCall) {
        try decode(payload) { reader throws(Malformed) in
            let hostCall = try reader.u64()
            let call: SDKCall
            switch try reader.u8() {
            case 0: call = .get(key: try reader.string())
            case 1:
                let key = try reader.string()
                let value = try reader.data()
                let conditional = try reader.bool()
                let expected = try reader.u64()
                call = .put(key: key, value: value, ifVersion: conditional ? expected : nil)
            case 2: call = .delete(key: try reader.string())
            case 3: call = .list(prefix: try reader.string(), limit: try reader.u32(), after: try reader.optionalString())
            case 4: call = .publish(type: try reader.string(), payload: try reader.data())
            case 5:
                let count = Int(try reader.u32())
                guard count <= reader.remaining else { throw Malformed("a batch of \(count) operations runs past the end of the frame") }
                var batch = WriteBatch()
                for _ in 0..<count {
                    switch try reader.u8() {
                    case 0:
                        let key = try reader.string()
                        let value = try reader.data()
                        let conditional = try reader.bool()
                        let expected = try reader.u64()
                        batch.put(key, value, ifVersion: conditional ? expected : nil)
                    case 1:
                        let key = try reader.string()
                        let conditional = try reader.bool()
                        let expected = try reader.u64()
                        batch.delete(key, ifVersion: conditional ? expected : nil)
                    case 2: batch.check(try reader.string(), version: try reader.u64())
                    case 3: batch.publish(type: try reader.string(), payload: try reader.data())
                    case let other: throw Malformed("unknown batch operation \(other)")
                    }
                }
                call = .commit(batch)
            case let other: throw Malformed("unknown SDK call \(other)")
            }
            return (hostCall, call)
        }
    }

    public static func encode(_ result: SDKResult, call: UInt64) -> [UInt8] {
        encode(.sdkReply, call: call) { writer in
            switch result {
            case .value(let stored):
                writer.u8(0)
                writer.bool(stored != nil)
                if let stored { writer.stored(stored) }
            case .version(let version): writer.u8(1); writer.u64(version)
            case .deleted(let deleted): writer.u8(2); writer.bool(deleted)
            case .page(let page):
                writer.u8(3)
                writer.u32(UInt32(truncatingIfNeeded: page.entries.count))
                for entry in page.entries { writer.stored(entry) }
                writer.optionalString(page.nextCursor)
            case .published: writer.u8(4)
            case .failed(let error): writer.u8(5); writer.pluginError(error)
            case .committed(let result):
                writer.u8(6)
                writer.u32(UInt32(truncatingIfNeeded: result.outcomes.count))
                for outcome in result.outcomes {
                    switch outcome {
                    case .put(let version): writer.u8(0); writer.u64(version)
                    case .delete(let existed): writer.u8(1); writer.bool(existed)
                    case .check: writer.u8(2)
                    case .publish(let id): writer.u8(3); writer.string(id)
                    }
                }
            }
        }
    }

    public static func sdkResult(_ payload: [UInt8]) throws(Malformed) -> SDKResult {
        try decode(payload) { reader throws(Malformed) in
            switch try reader.u8() {
            case 0: return .value(try reader.bool() ? try reader.stored() : nil)
            case 1: return .version(try reader.u64())
            case 2: return .deleted(try reader.bool())
            case 3:
                let count = Int(try reader.u32())
                guard count <= reader.remaining else { throw Malformed("a page of \(count) entries runs past the end of the frame") }
                var entries: [StoredValue] = []
                for _ in 0..<count { entries.append(try reader.stored()) }
                return .page(StoragePage(entries: entries, nextCursor: try reader.optionalString()))
            case 4: return .published
            case 5: return .failed(try reader.pluginError())
            case 6:
                let count = Int(try reader.u32())
                guard count <= reader.remaining else { throw Malformed("a batch result of \(count) outcomes runs past the end of the frame") }
                var outcomes: [WriteBatchResult.Outcome] = []
                for _ in 0..<count {
                    switch try reader.u8() {
                    case 0: outcomes.append(.put(version: try reader.u64()))
                    case 1: outcomes.append(.delete(existed: try reader.bool()))
                    case 2: outcomes.append(.check)
                    case 3: outcomes.append(.publish(eventID: try reader.string()))
                    case let other: throw Malformed("unknown batch outcome \(other)")
                    }
                }
                return .committed(WriteBatchResult(outcomes: outcomes))
            case let other: throw Malformed("unknown SDK result \(other)")
            }
        }
    }

    /// A log record; `call` names the host's call it was written in, 0 for none.
    public static func encode(_ log: Log, call: UInt64) -> [UInt8] {
        encode(.log, call: call) { writer in
            writer.u8(log.level.wireValue)
            writer.string(log.message)
            writer.map(log.metadata)
        }
    }

    public static func log(_ payload: [UInt8]) throws(Malformed) -> Log {
        try decode(payload) { reader throws(Malformed) in
            let raw = try reader.u8()
            guard let level = PluginLogLevel.allCases.first(where: { $0.wireValue == raw }) else { throw Malformed("unknown log level \(raw)") }
            return Log(level: level, message: try reader.string(), metadata: try reader.map())
        }
    }

    public static func encode(message: String, kind: Kind, call: UInt64) -> [UInt8] {
        encode(kind, call: call) { $0.string(message) }
    }

    public static func message(_ payload: [UInt8]) throws(Malformed) -> String {
        try decode(payload) { reader throws(Malformed) in try reader.string() }
    }

    public static func unbinding(_ payload: [UInt8]) throws(Malformed) -> UInt32 {
        try decode(payload) { reader throws(Malformed) in try reader.u32() }
    }

    public static func encodeUnbind(_ binding: UInt32) -> [UInt8] {
        encode(.unbind, call: 0) { $0.u32(binding) }
    }

    /// Reads a whole payload with `body`, and refuses bytes left after it.
    private static func decode<T>(_ payload: [UInt8], _ body: (inout Reader) throws(Malformed) -> T) throws(Malformed) -> T {
        // (withUnsafeBytes rethrows as `any Error`: the outcome comes out as a typed Result.)
        let outcome = payload.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Result<T, Malformed> in
            var reader = Reader(bytes)
            do throws(Malformed) {
                let value = try body(&reader)
                try reader.end()
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }
}

extension PluginLogLevel {
    var wireValue: UInt8 {
        switch self {
        case .debug: 0
        case .info: 1
        case .warning: 2
        case .error: 3
        }
    }
}
