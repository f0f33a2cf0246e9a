import Foundation
import PluginSDK
import Synchronization

/// Misbehaves on request, so tests can show the host contains it:
/// `throw` throws an arbitrary error, `hang` ignores cancellation for 3 seconds, `status` answers
/// with an impossible status, `thread` answers the name of the thread it runs on, `slow` answers 200
/// after a second, `module` answers the Swift module it was built as, `big?bytes=N` answers N bytes,
/// `fine` answers 200.
/// In a worker process only (anywhere else they answer 400, so a test cannot take its own host down):
/// `segfault`, `abort`, `fatal`, `exit` end the process as named; `spin` loops without ever suspending;
/// `garbage` writes bytes that are not a frame to the worker's socket, `oversized` a frame header over
/// any limit; `fork` leaves a child process
/// behind and answers its pid; `hog` allocates memory until it cannot; `files` opens files until it
/// cannot and answers how many; `flood` writes 5,000 log records and 1 MB to standard error. `pid`
/// answers the process id.
/// `publish?count=N&poison=K` publishes N events in one write batch, the K-th of them poison to its own
/// event handler; `calls` answers how many events each call of its `handle(events:)` brought.
/// Its `enabled` hook refuses a config with `refuse: true`, and remembers a config `marker` file, to
/// which its `shutdown` hook writes `shut down`; with `stubborn: true` its `shutdown` never returns.
final class FaultyPlugin: Plugin {
    struct Secret: Error { var detail = "internal detail that must not reach the caller" }
    private let markers = Mutex<[String]>([])
    /// Failed deliveries so far, per event id.
    private let failures = Mutex<[String: Int]>([:])
    /// Set by a config `stubborn: true`: its `shutdown` never returns.
    private let stubborn = Atomic<Bool>(false)
    /// How many events each call of `handle(events:)` brought, in order (answered by `GET calls`).
    private let calls = Mutex<[Int]>([])

    func handle(_ request: PluginRequest, context: any PluginContext) async throws -> PluginResponse {
        switch request.path {
        case "throw":
            throw Secret()
        case "hang":
            // Cancellation cannot end this wait, and it holds no thread (a loop of `try? Task.sleep`
            // would spin once cancelled, and starve the other tests).
            await withCheckedContinuation { continuation in
                DispatchQueue.global().asyncAfter(deadline: .now() + 3) { continuation.resume() }
            }
            return PluginResponse(status: 200)
        case "status":
            return PluginResponse(status: 1234)
        case "slow":
            try await Task.sleep(for: .seconds(1))
            return try .json(["slow": true])
        case "module":
            // FaultyPlugin, or FaultyPluginV2 for the same source built as version 2.0.0.
            return try .json(["module": String(#fileID.prefix { $0 != "/" })])
        case "pid":
            return try .json(["pid": Int(getpid())])
        case "big":
            return PluginResponse(status: 200, body: Data(count: request.query["bytes"]?.first.flatMap { Int($0) } ?? 0))
        case "segfault", "abort", "fatal", "exit", "spin", "garbage", "oversized", "fork", "flood", "hog", "files":
            guard CommandLine.arguments.first?.hasSuffix("plugin-host-worker") == true else {
                throw PluginError.badRequest("\(request.path) is only done in a worker process")
            }
            return try Self.fault(request.path, context: context)
        case "received":
            var counts: [String: Int] = [:]
            var cursor: String?
            repeat {
                let page = try await context.storage.list(prefix: "received/", limit: 1000, after: cursor)
                for entry in page.entries { counts[String(entry.key.dropFirst("received/".count))] = Int(String(decoding: entry.value, as: UTF8.self)) }
                cursor = page.nextCursor
            } while cursor != nil
            return try .json(counts)
        case "batch":
            // A write batch of a put and a notes.faulty event, then: `commit`, `throw` before committing,
            // or `conflict` (a check that cannot hold).
            var batch = WriteBatch()
            batch.put("batched", Data("value".utf8))
            try batch.publish(type: "notes.faulty", json: ["from": "batch"])
            switch request.queryValue("then") {
            case "throw":
                throw Secret()
            case "conflict":
                batch.check("absent", version: 7)
                _ = try await context.storage.commit(batch)
                return PluginResponse(status: 200)
            default:
                let result = try await context.storage.commit(batch)
                guard case .put(let version) = result.outcomes.first else { throw Secret() }
                return try .json(["version": String(version), "event": result.eventIDs.first ?? ""])
            }
        case "publish":
            // `count` notes.faulty events {"n": i} in one write batch; the one at index `poison` carries
            // "poison": true, which its event handler always refuses.
            let count = request.queryValue("count").flatMap { Int($0) } ?? 1
            let poison = request.queryValue("poison").flatMap { Int($0) }
            var batch = WriteBatch()
            for index in 0..<count { try batch.publish(type: "notes.faulty", json: ["n": .integer(Int64(index)), "poison": .bool(index == poison)] as [String: JSONValue]) }
            let result = try await context.storage.commit(batch)
            return try .json(["events": result.eventIDs])
        case "calls":
            return try .json(["calls": calls.withLock { $0 }])
        case "batched":
            guard let stored = try await context.storage.get("batched") else { throw PluginError.notFound("batched") }
            return PluginResponse(status: 200, body: stored.value)
        case "thread":
            let name = try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            return try .json(["thread": name.trimmingCharacters(in: .whitespacesAndNewlines)])
        default:
            return try .json(["ok": true])
        }
    }

    private static func fault(_ name: String, context: any PluginContext) throws -> PluginResponse {
        switch name {
        case "segfault":
            UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 42
        case "abort":
            abort()
        case "fatal":
            fatalError("the faulty plugin gave up")
        case "exit":
            exit(0)
        case "spin":
            let counter = Atomic<Int>(0)
            while counter.wrappingAdd(1, ordering: .relaxed).newValue != 0 {}
        case "garbage":
            let bytes: [UInt8] = Array("this is not a frame, and it is long enough to look like one".utf8)
            _ = bytes.withUnsafeBytes { write(0, $0.baseAddress, $0.count) }
            Thread.sleep(forTimeInterval: 5)
        case "oversized":
            // A frame header announcing 255 MiB.
            let bytes: [UInt8] = [0xF0, 0xFF, 0xFF, 0x0F, 22, 1, 0, 0, 0, 0, 0, 0, 0]
            _ = bytes.withUnsafeBytes { write(0, $0.baseAddress, $0.count) }
            Thread.sleep(forTimeInterval: 5)
        case "fork":
            let child = fork()
            if child == 0 {
                sleep(60)
                _exit(0)
            }
            return try .json(["child": Int(child)])
        case "hog":
            // Memory it writes to and keeps, a MiB at a time, until the worker's limit stops it.
            var kept: [UnsafeMutableRawPointer] = []
            while true {
                let block = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
                block.initializeMemory(as: UInt8.self, repeating: 1, count: 1 << 20)
                kept.append(block)
            }
        case "files":
            // Opens /dev/null until it may not, answers how many it could, and closes them.
            var opened: [Int32] = []
            while opened.count < 100_000 {
                let descriptor = open("/dev/null", O_RDONLY)
                if descriptor < 0 { break }
                opened.append(descriptor)
            }
            for descriptor in opened { close(descriptor) }
            return try .json(["opened": opened.count])
        case "flood":
            for index in 0..<5_000 { context.logger.info("flood \(index)") }
            FileHandle.standardError.write(Data(repeating: UInt8(ascii: "x"), count: 1 << 20) + Data("\n".utf8))
            return try .json(["flooded": true])
        default:
            break
        }
        return PluginResponse(status: 500)
    }

    func enabled(context: any PluginContext) async throws {
        if context.config["refuse"]?.boolValue == true { throw PluginError.badRequest("refusing to be enabled") }
        if case .string(let marker)? = context.config["marker"] { markers.withLock { $0.append(marker) } }
        if context.config["stubborn"]?.boolValue == true { stubborn.store(true, ordering: .relaxed) }
    }

    func shutdown() async {
        // Holds its thread for good: only the host's kill ends it (set only in worker tests).
        while stubborn.load(ordering: .relaxed) { sleep(1) }
        for marker in markers.withLock({ $0 }) { try? "shut down".write(toFile: marker, atomically: true, encoding: .utf8) }
    }

    /// Records how many events the call brought, and refuses the call if one of them is poison; then
    /// each event as below.
    func handle(events: [PluginEvent], context: any PluginContext) async throws {
        calls.withLock { $0.append(events.count) }
        for event in events {
            if case .object(let fields)? = try? PluginJSON.decoder().decode(JSONValue.self, from: event.payload), fields["poison"] == .bool(true) {
                throw PluginError.badRequest("poison event \(event.id)")
            }
        }
        for event in events { try await handle(event: event, context: context) }
    }

    /// Fails each event `eventFailures` times before taking it (config; -1, the default: always), and
    /// counts what it took under `received/<event id>` (answered by `GET received`).
    func handle(event: PluginEvent, context: any PluginContext) async throws {
        let allowed = context.config["eventFailures"]?.integerValue ?? -1
        let failed = failures.withLock { failures in
            defer { failures[event.id, default: 0] += 1 }
            return failures[event.id, default: 0]
        }
        if allowed < 0 || failed < allowed { throw Secret() }
        let key = "received/\(event.id)"
        let count = try await context.storage.get(key).map { Int(String(decoding: $0.value, as: UTF8.self)) ?? 0 } ?? 0
        try await context.storage.put(key, Data(String(count + 1).utf8))
    }
}

@_cdecl("plugin_host_entry")
public func pluginHostEntry() -> UnsafeMutableRawPointer {
    PluginExport.entry(FaultyPlugin())
}
