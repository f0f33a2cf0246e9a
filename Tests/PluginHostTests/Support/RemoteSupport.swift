import Foundation
import PluginHost
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How the notes plugin runs in a conformance test: the same behaviour, three runtimes.
enum NotesRuntime: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// `libNotesPlugin.so` loaded into the host.
    case library
    /// The same library in a `plugin-host-worker` process (`isolation: worker`).
    case worker
    /// The same library behind `plugin-host serve-plugin`, a remote plugin over HTTP.
    case servePlugin = "serve-plugin"
    /// `Plugins/python/notes_plugin.py`, standard library only.
    case python

    var testDescription: String { rawValue }
}

/// A remote plugin process: `plugin-host serve-plugin --library …` or the Python notes plugin, reading its
/// install secret from a file the test writes once the host answered it.
struct RemotePluginProcess: Sendable {
    let child: ChildProcess
    let secretFile: String

    var port: Int { child.port }
    var url: String { "http://127.0.0.1:\(child.port)" }

    static func servePlugin(library: String, folder: String, port: Int = 0, name: String = "remote") async throws -> RemotePluginProcess {
        let secretFile = folder + "/\(name).secret"
        let child = try await ChildProcess.start(
            HostProcess.executable,
            ["serve-plugin", "--library", library, "--port", String(port), "--install-secret-file", secretFile, "--log-level", "warning"],
            log: folder + "/\(name).log", pattern: #"listening on 127\.0\.0\.1:(\d+)"#
        )
        return RemotePluginProcess(child: child, secretFile: secretFile)
    }

    static func python(folder: String) async throws -> RemotePluginProcess {
        let secretFile = folder + "/python.secret"
        let script = Fixtures.root.appendingPathComponent("Plugins/python/notes_plugin.py").path
        let child = try await ChildProcess.start(
            "/usr/bin/env", ["python3", script, "--port", "0", "--install-secret-file", secretFile],
            log: folder + "/python.log", pattern: #"listening on 127\.0\.0\.1:(\d+)"#
        )
        return RemotePluginProcess(child: child, secretFile: secretFile)
    }

    /// Hands the remote the install secret from the install answer.
    func give(installSecret reply: TestHost.Reply) throws {
        let secret = try #require(reply.json["installSecret"] as? String, "the install answer has no installSecret: \(reply.text)")
        try secret.write(toFile: secretFile, atomically: true, encoding: .utf8)
    }

    func stop() async { await child.terminate() }
}

/// Runs `body`, then stops the remote `current` names at that point (a test may have restarted it), also
/// when `body` throws. The stop is awaited, so no process outlives the test or its folder.
func stoppingAfterwards(_ current: () -> RemotePluginProcess?, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        await current()?.stop()
        throw error
    }
    await current()?.stop()
}

extension Fixtures {
    /// `manifest` (YAML of a library plugin) with its runtime replaced by a remote one at `url`.
    static func remote(_ manifest: String, url: String) -> String {
        manifest.replacingOccurrences(
            of: #"runtime:\n  kind: library\n  path: [^\n]*\n"#,
            with: "runtime:\n  kind: remote\n  url: \(url)\n  timeout: 5s\n", options: .regularExpression
        )
    }

    /// An echo plugin manifest for a remote at `url`.
    static func remoteEcho(url: String, timeout: String = "5s") -> String {
        """
        id: example.echo
        name: Echo
        version: 1.0.0
        sdk: ^1.0.0
        runtime: {kind: remote, url: "\(url)", timeout: \(timeout)}
        """
    }
}

/// Remote settings that make the tests fast: frequent health checks, short cool-down, quick retries.
func fastRemotes(_ configuration: inout HostConfiguration) {
    configuration.remote.healthInterval = .milliseconds(200)
    configuration.remote.cooldown = .milliseconds(500)
    configuration.remote.failureThreshold = 3
    // Generous: a loaded 2-core machine has taken over 300 ms to accept a loopback connection. A remote
    // that is down refuses at once whatever it is.
    configuration.remote.connectTimeout = .seconds(2)
    configuration.remote.eventRetry = .init(maxAttempts: 40, initialDelay: .milliseconds(100), maxDelay: .milliseconds(400))
}

/// A misbehaving "remote" on a blocking socket of its own: it answers `200 {}` (recording each request),
/// or answers late, or answers garbage, or closes the connection, as the test sets ``mode``.
final class FakeRemote: Sendable {
    enum Mode: Int {
        case ok, slow, garbage, close
    }

    struct Received: Sendable {
        var method: String
        var target: String
        var headers: [String: String]
        var body: Data
    }

    let port: Int
    private let socket: Int32
    private let modeValue = Atomic<Int>(Mode.ok.rawValue)
    private let log = Mutex<[Received]>([])
    private let stopped = Atomic<Bool>(false)

    var mode: Mode {
        get { Mode(rawValue: modeValue.load(ordering: .relaxed))! }
        set { modeValue.store(newValue.rawValue, ordering: .relaxed) }
    }

    var received: [Received] { log.withLock { $0 } }

    init() throws {
        // Close-on-exec, as every descriptor should be: child processes the tests start must not hold it.
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        socket = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Stops accepting; connections in flight finish on their own threads.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(socket, Int32(SHUT_RDWR))
        close(socket)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let connection = accept(socket, nil, nil)
            guard connection >= 0 else { return }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // A thread of its own: a slow answer sleeps in it, and Dispatch's shared threads are the
            // ones Swift concurrency runs on here.
            Thread { [self] in serve(connection) }.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        guard let request = read(connection) else { return }
        log.withLock { $0.append(request) }
        switch mode {
        case .ok:
            write(connection, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        case .slow:
            Thread.sleep(forTimeInterval: 3)
            write(connection, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        case .garbage:
            write(connection, "this is not HTTP at all\r\n\r\n")
        case .close:
            return
        }
    }

    private func read(_ connection: Int32) -> Received? {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let separator = Data("\r\n\r\n".utf8)
        while data.range(of: separator) == nil {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            data.append(contentsOf: buffer[0..<count])
        }
        let headerEnd = data.range(of: separator)!
        let head = String(decoding: data[..<headerEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = head[0].split(separator: " ")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(data[headerEnd.upperBound...])
        let length = Int(headers["content-length"] ?? "") ?? 0
        while body.count < length {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            body.append(contentsOf: buffer[0..<count])
        }
        return Received(method: String(requestLine.first ?? ""), target: String(requestLine.dropFirst().first ?? ""), headers: headers, body: body)
    }

    private func write(_ connection: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
