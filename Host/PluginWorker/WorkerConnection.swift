import Foundation
import PluginHostFormats
import PluginSDK
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The worker's end of the socket pair (its standard input): frames are read by one thread blocked in
/// `read`, and written whole under a lock from whichever task has one to send.
final class WorkerConnection: Sendable {
    let descriptor: Int32
    private let writeLock = Mutex(())
    /// The worker's own SDK calls awaiting the host's answer, by the worker's number for them.
    private let pending = Mutex<(next: UInt64, calls: [UInt64: CheckedContinuation<[UInt8], any Error>])>((1, [:]))

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Writes a whole frame. A host that is gone ends the worker: nothing it does can reach anyone.
    func send(_ frame: [UInt8]) {
        writeLock.withLock { _ in
            frame.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)  // a non-empty frame has a base address
                    if written < 0 {
                        if errno == EINTR { continue }
                        _exit(0)
                    }
                    offset += written
                }
            }
        }
    }

    /// Sends an SDK call made on behalf of the host's call `hostCall`, and waits for the host's answer.
    func sdk(_ call: WorkerWire.SDKCall, onBehalfOf hostCall: UInt64) async throws -> WorkerWire.SDKResult {
        let payload = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
            let number = pending.withLock { pending in
                let number = pending.next
                pending.next += 1
                pending.calls[number] = continuation
                return number
            }
            send(WorkerWire.encode(call, call: number, onBehalfOf: hostCall))
        }
        return try WorkerWire.sdkResult(payload)
    }

    /// The host's answer to the SDK call `number`; an answer to a call not made is ignored.
    func answer(_ number: UInt64, payload: [UInt8]) {
        pending.withLock { $0.calls.removeValue(forKey: number) }?.resume(returning: payload)
    }

    /// Reads frames until the host closes its end, and hands each to `handle`.
    func readFrames(limit: () -> UInt32, _ handle: (WorkerWire.Frame) -> Void) {
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            buffer.append(contentsOf: chunk[0..<count])
            var consumed = 0
            while true {
                let next: WorkerWire.Frame? = buffer.withUnsafeBytes { bytes in
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
                    do {
                        guard let length = try WorkerWire.frameLength(rest, limit: limit()), length <= rest.count else { return nil }
                        let frame = try WorkerWire.frame(UnsafeRawBufferPointer(rebasing: rest[0..<length]))
                        consumed += length
                        return frame
                    } catch {
                        WorkerLog.fatal("the host sent a malformed frame: \(error)")
                    }
                }
                guard let next else { break }
                handle(next)
            }
            if consumed > 0 { buffer.removeFirst(consumed) }
        }
    }
}

/// What the worker writes itself goes to its standard error, which the host logs with the plugin's id.
enum WorkerLog {
    static func line(_ message: String) {
        FileHandle.standardError.write(Data("plugin-host-worker: \(message)\n".utf8))
    }

    static func fatal(_ message: String) -> Never {
        line(message)
        exit(70)
    }
}
