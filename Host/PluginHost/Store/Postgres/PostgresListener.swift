import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `LISTEN`s on a connection and a thread of its own (waiting in `poll`, never on the cooperative pool):
/// registry changes go to a ``RegistryChangeFeed``, notices of committed events to an ``EventNoticeFeed``. After every (re)connect it asks for everything (the whole registry, every lane),
/// since notifications sent while it was disconnected are lost.
final class PostgresListener: Sendable {
    let changes = RegistryChangeFeed()
    let eventNotices = EventNoticeFeed()
    private let url: String
    private let channel: String
    private let eventChannel: String
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)

    init(url: String, channel: String, eventChannel: String, logger: Logger) {
        self.url = url
        self.channel = channel
        self.eventChannel = eventChannel
        self.logger = logger
    }

    func start() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        startNamedThread("pq-listen") { [self] in listen() }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        if !started.load(ordering: .relaxed) {
            changes.finish()
            eventNotices.finish()
        }
    }

    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private func listen() {
        var backoff = 0.25
        while !isStopped {
            do {
                let connection = try PostgresConnection(url: url, statementTimeout: .seconds(5))
                try connection.query("SELECT set_config('application_name', 'plugin-host-listen', false)")
                try connection.execute("LISTEN \(channel); LISTEN \(eventChannel)")
                changes.addEverything()
                eventNotices.addEverything()
                backoff = 0.25
                while !isStopped {
                    var descriptor = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&descriptor, 1, 250)
                    if ready < 0 && errno != EINTR { break }
                    guard connection.checkAlive() else { break }
                    for notification in connection.notifications() {
                        if notification.channel == eventChannel {
                            eventNotices.received(notification.payload)
                        } else {
                            changes.received(notification.payload)
                        }
                    }
                }
                if !isStopped { logger.warning("lost the registry notification connection; reconnecting") }
            } catch {
                logger.warning("cannot listen for registry changes; retrying", metadata: ["error": "\(error)", "retry.seconds": "\(backoff)"])
            }
            var slept = 0.0
            while !isStopped && slept < backoff {
                Thread.sleep(forTimeInterval: 0.05)
                slept += 0.05
            }
            backoff = min(backoff * 2, 5)
        }
        changes.finish()
        eventNotices.finish()
    }
}
