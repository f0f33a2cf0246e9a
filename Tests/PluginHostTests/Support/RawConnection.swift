import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A plain TCP connection to 127.0.0.1, for the bytes no HTTP client sends: malformed heads and
/// chunks, bodies cut short, requests dribbled a byte at a time.
final class RawConnection: Sendable {
    private let channel: any Channel
    private let collector: Collector

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex<[UInt8]>([])

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data)
            bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }
    }

    static func open(port: Int) async throws -> RawConnection {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, collector: collector)
    }

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Sends `text` one byte at a time, `interval` apart; stops early, without an error, once the
    /// server has closed the connection.
    func dribble(_ text: String, interval: Duration) async throws {
        for byte in text.utf8 {
            guard channel.isActive else { return }
            try? await channel.writeAndFlush(ByteBuffer(bytes: [byte])).get()
            try await Task.sleep(for: interval)
        }
    }

    /// Everything received so far.
    var received: String { String(decoding: collector.bytes.withLock { $0 }, as: UTF8.self) }

    /// Whether the server closed the connection within `timeout`.
    func closedByServer(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while channel.isActive && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !channel.isActive
    }

    /// Waits until `text` has been received or `timeout` passed, and returns what was received.
    func receive(until text: String, within timeout: Duration = .seconds(10)) async -> String {
        let deadline = ContinuousClock.now + timeout
        while !received.contains(text) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return received
    }

    func close() async {
        try? await channel.close()
    }
}

/// The parts of a raw HTTP/1.1 response that tests look at.
struct RawResponse {
    var status: Int
    var headers: [String: String]
    var body: String

    /// The first response in `text`; `nil` when there is none.
    init?(_ text: String) {
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let statusLine = lines.first, let code = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        status = code
        headers = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let rest = text[split.upperBound...]
        body = headers["content-length"].flatMap(Int.init).map { String(rest.prefix($0)) } ?? String(rest)
    }

    var errorCode: String? {
        let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        return (json?["error"] as? [String: Any])?["code"] as? String
    }

    var errorRequestID: String? {
        let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        return (json?["error"] as? [String: Any])?["requestId"] as? String
    }
}
