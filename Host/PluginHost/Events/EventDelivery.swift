import Foundation
import Logging
import PluginSDK
import ServiceLifecycle
import Synchronization

/// Delivers each workspace's events to every enablement there that subscribes to them, at least once
/// and in the order they were committed (docs/events.md).
///
/// Each (workspace, subscriber) is a *lane* with its own position in the store. A lane reads the events
/// after its position in batches, gives the subscriber those it subscribes to in runs of up to its
/// manifest's `delivery.batchSize` (one at a time after a run failed), and saves its position every
/// `saveInterval` while it delivers, before it waits and when a delivery fails. A failed delivery is
/// retried with exponential backoff and jitter, holding back the lane's later events, until it succeeds
/// or its attempts run out and it becomes a dead letter of the workspace.
///
/// Several hosts on one database share the lanes through leases: a host takes a lane's lease when it
/// starts on it and renews it with every save, and a lane whose host died is taken by another once the
/// lease has expired. A store outage fails nothing: lanes wait for the store and go on where they were.
package final class EventDelivery: Service, Sendable {
    struct LaneKey: Hashable, Sendable {
        var workspaceID: String
        var pluginID: String
    }

    private let runtime: PluginRuntime
    private let wakeups: EventWakeups
    private let owner: String
    private let logger: Logger
    private let lanes = Mutex<[LaneKey: Lane]>([:])
    /// Called with each event delivered and its subscriber (by the benchmark).
    private let observer: (@Sendable (PluginEvent, String) -> Void)?

    package init(runtime: PluginRuntime, logger: Logger, observer: (@Sendable (PluginEvent, String) -> Void)? = nil) {
        self.observer = observer
        self.runtime = runtime
        self.wakeups = runtime.outbox.wakeups
        self.owner = runtime.hostID
        self.logger = logger
    }

    package func run() async throws {
        // Hosts sharing a PostgreSQL database tell each other where events were committed, so their
        // lanes wake at once; the notices of one moment go out together, after the commits.
        let (store, wakeups) = (runtime.store, self.wakeups)
        let announcer = Task {
            for await _ in wakeups.announcements {
                let workspaceIDs = wakeups.takeUnannounced()
                if !workspaceIDs.isEmpty { await store.notifyEvents(workspaceIDs: workspaceIDs) }
            }
        }
        let listener = Task {
            guard let feed = store.eventNotices else { return }
            for await _ in feed.wakeups {
                switch feed.take() {
                case .everything?: wakeups.wakeAll()
                case .workspaces(let ids)?: for id in ids { wakeups.wakeHere(workspaceID: id) }
                case nil: break
                }
                if Task.isCancelled { return }
            }
        }
        defer {
            wakeups.finishAnnouncements()
            announcer.cancel()
            listener.cancel()
        }
        await manage()
    }

    private func manage() async {
        let settings = runtime.configuration.events
        var pruned = ContinuousClock.now
        var measured = ContinuousClock.now
        // Cancelled (the service group ends without a graceful shutdown) is the same as shutting down.
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if runtime.isReady {
                reconcile()
                if ContinuousClock.now - pruned >= settings.pruneInterval {
                    pruned = .now
                    await prune()
                }
                if ContinuousClock.now - measured >= .seconds(10) {
                    measured = .now
                    await measureBacklogs()
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
        // Each lane finishes the delivery it is making and gives up its lease.
        let running = lanes.withLock { lanes in
            defer { lanes = [:] }
            return Array(lanes.values)
        }
        for lane in running { lane.stop() }
        for lane in running { await lane.task?.value }
    }

    /// Counts the events waiting in each lane this host runs, for `/metrics`.
    private func measureBacklogs() async {
        let running = lanes.withLock { Array($0.keys) }
        for workspace in Set(running.map(\.workspaceID)) {
            guard let positions = try? await runtime.store.eventLanes(workspaceID: workspace) else { continue }
            for key in running where key.workspaceID == workspace {
                guard let position = positions[key.pluginID],
                      let count = try? await runtime.store.eventBacklog(workspaceID: workspace, after: position, cap: 1_000_000) else { continue }
                runtime.metrics.recordBacklog(workspaceID: workspace, pluginID: key.pluginID, count: count)
            }
        }
    }

    /// Starts a lane for each enablement that subscribes to events, and stops the others.
    private func reconcile() {
        let wanted = runtime.events.subscribingEnablements()
        let (started, stopped) = lanes.withLock { lanes -> ([Lane], [Lane]) in
            var started: [Lane] = []
            for key in wanted where lanes[key] == nil {
                let lane = Lane(key: key, delivery: self)
                lanes[key] = lane
                started.append(lane)
            }
            let stopped = lanes.filter { !wanted.contains($0.key) }
            for key in stopped.keys { lanes[key] = nil }
            return (started, Array(stopped.values))
        }
        for lane in stopped { lane.stop() }
        for lane in started { lane.start() }
    }

    /// Forgets events every lane is past and old dead letters, and lanes whose enablement is gone.
    private func prune() async {
        let before = Date().addingTimeInterval(-runtime.configuration.events.retention.seconds)
        let wanted = runtime.events.subscribingEnablements()
        for workspace in runtime.registry.workspaceIDs() {
            do {
                for pluginID in try await runtime.store.eventLanes(workspaceID: workspace).keys
                where !wanted.contains(LaneKey(workspaceID: workspace, pluginID: pluginID)) {
                    // The store, not this host's copy of the registry, says whether the enablement is gone
                    // or its plugin no longer subscribes to anything: a lane left behind would keep every
                    // later event of the workspace from being pruned.
                    let enabled = try await runtime.store.enablement(workspaceID: workspace, pluginID: pluginID) != nil
                    let subscribes = try await runtime.store.plugin(id: pluginID).map { !$0.manifest.subscriptions.isEmpty } ?? false
                    if !enabled || !subscribes {
                        try await runtime.store.deleteEventLane(workspaceID: workspace, pluginID: pluginID)
                    }
                }
                try await runtime.store.pruneEvents(workspaceID: workspace, before: before)
            } catch {
                logger.warning("pruning delivered events failed; trying again later", metadata: ["workspace.id": "\(workspace)", "error": "\(error)"])
            }
        }
    }

    /// One (workspace, subscriber) lane: a task that delivers while it holds the lease.
    final class Lane: Sendable {
        let key: LaneKey
        let delivery: EventDelivery
        let signal: LaneSignal
        private let stopped = Atomic<Bool>(false)
        private let lastReplayCheckBox = Mutex<ContinuousClock.Instant>(.now)
        /// After a run of events failed as one call, the lane hands them over one at a time up to this
        /// position, so that a bad event is retried, and buried, alone.
        private let singlyUntilBox = Mutex<EventPosition?>(nil)
        /// The lane as this host holds it, between turns: its state, where it was last saved and when
        /// (which renewed the lease). `nil` until claimed, and after a failure or a lost lease.
        private let heldBox = Mutex<Held?>(nil)
        struct Held {
            var state: EventLaneState
            var saved: EventPosition
            var savedAt: ContinuousClock.Instant
        }
        /// How often a lane that delivers without pause saves its position (and renews its lease). A host
        /// that dies delivers again at most what came after the last save; a save per batch would take
        /// the store's time from the writers a busy lane must keep up with.
        static let saveInterval: Duration = .milliseconds(250)
        private var lastReplayCheck: ContinuousClock.Instant {
            get { lastReplayCheckBox.withLock { $0 } }
            set { lastReplayCheckBox.withLock { $0 = newValue } }
        }
        static let replayCheckInterval: Duration = .seconds(5)
        private let taskBox = Mutex<Task<Void, Never>?>(nil)

        var task: Task<Void, Never>? { taskBox.withLock { $0 } }

        init(key: LaneKey, delivery: EventDelivery) {
            self.key = key
            self.delivery = delivery
            self.signal = delivery.wakeups.signal(workspaceID: key.workspaceID)
        }

        func start() {
            let task = Task { await self.run() }
            taskBox.withLock { $0 = task }
        }

        func stop() {
            stopped.store(true, ordering: .relaxed)
            signal.fire()
        }

        private var isStopped: Bool { stopped.load(ordering: .relaxed) }

        private func run() async {
            let runtime = delivery.runtime
            let settings = runtime.configuration.events
            var logger = delivery.logger
            logger[metadataKey: "workspace.id"] = "\(key.workspaceID)"
            logger[metadataKey: "plugin.id"] = "\(key.pluginID)"
            var outage: Duration?
            while !isStopped {
                do {
                    let idle = try await step(settings: settings, logger: logger)
                    if outage != nil {
                        logger.notice("event delivery resumed: the store is back")
                        outage = nil
                    }
                    if let idle { await signal.wait(timeout: idle) }
                } catch {
                    // The store is down (or failing): wait for it, with backoff, and lose nothing.
                    let wait = min((outage ?? .milliseconds(50)) * 2, .seconds(2))
                    if outage == nil { logger.warning("event delivery waits for the store", metadata: ["error": "\(error)"]) }
                    outage = wait
                    await signal.wait(timeout: wait)
                }
            }
            if let held = heldBox.withLock({ $0 }), held.state.position != held.saved {
                _ = try? await advance(to: held.state.position, settings: settings)
            }
            try? await runtime.store.releaseEventLane(workspaceID: key.workspaceID, pluginID: key.pluginID, owner: delivery.owner)
            delivery.wakeups.remove(signal, workspaceID: key.workspaceID)
        }

        /// One turn of the lane: replays, then a batch of new events. Returns how long to wait before the
        /// next turn (`nil`: go on at once).
        private func step(settings: HostConfiguration.EventSettings, logger: Logger) async throws -> Duration? {
            let runtime = delivery.runtime
            let store = runtime.store
            let (workspace, plugin, owner) = (key.workspaceID, key.pluginID, delivery.owner)
            let now = Date()
            var lane: EventLaneState
            if let held = heldBox.withLock({ $0 }) {
                lane = held.state
                // Held since the last save: saved again (and the lease renewed) before a third of it is gone.
                if ContinuousClock.now - held.savedAt > settings.lease / 3 {
                    guard try await save(lane.position, settings: settings) else { return nil }
                }
            } else {
                guard let claimed = try await store.claimEventLane(workspaceID: workspace, pluginID: plugin, owner: owner, now: now, until: now + settings.lease.seconds)
                else {
                    // Another host delivers this lane; look again in case it dies.
                    return settings.lease / 2
                }
                lane = claimed
                heldBox.withLock { $0 = Held(state: claimed, saved: claimed.position, savedAt: .now) }
            }
            // A failure or a replay below saves what it must and lets go of the held state: the next turn
            // claims the lane again, reading attempts and position from the store.
            var keep = false
            defer { if !keep { heldBox.withLock { $0 = nil } } }
            // Replays an admin asked for on this host wake the lane; those asked for on another host are
            // found within `replayCheckInterval`.
            if signal.takeReplayRequest() || ContinuousClock.now - lastReplayCheck >= Self.replayCheckInterval {
                lastReplayCheck = .now
                if try await replay(logger: logger) {
                    keep = true  // a replay leaves the lane's own state as it was
                    return nil
                }
            }
            if lane.attempts > 0, lane.nextAttemptAt > now {
                return .seconds(lane.nextAttemptAt.timeIntervalSince(now))
            }
            let batch = try await store.events(workspaceID: workspace, after: lane.position, limit: settings.batchSize)
            if batch.isEmpty {
                // Idle: what was delivered is saved before the lane waits.
                if heldBox.withLock({ $0?.saved }) != lane.position {
                    guard try await save(lane.position, settings: settings) else { return nil }
                }
                keep = true
                return settings.pollInterval
            }
            guard let subscriber = runtime.events.subscriber(plugin, in: workspace) else {
                // Not enabled here (the lane is about to stop), or not loaded on this host for now: its
                // events wait for it, as for a subscriber that fails.
                keep = true
                return settings.pollInterval
            }
            var next = 0
            while next < batch.count, !isStopped {
                // The next run: events it does not take are passed over; up to its batch size of those it
                // takes (one while a failure is being retried), within `maximumRunBytes` of payload.
                let singly = lane.attempts > 0 || singlyUntilBox.withLock { until in
                    if let limit = until, lane.position < limit { return true }
                    until = nil
                    return false
                }
                let size = singly ? 1 : subscriber.batchSize
                var run: [StoredEvent] = []
                var bytes = 0
                var end = lane.position
                while next < batch.count, run.count < size {
                    let stored = batch[next]
                    if subscriber.accepts(stored.event.type) {
                        if !run.isEmpty, bytes + stored.event.payload.count > Self.maximumRunBytes { break }
                        run.append(stored)
                        bytes += stored.event.payload.count
                    }
                    end = stored.position
                    next += 1
                }
                guard !run.isEmpty else {
                    lane.position = end  // nothing it takes: passed over
                    heldBox.withLock { $0?.state = lane }
                    continue
                }
                do {
                    try await subscriber.deliver(run.map(\.event))
                    let now = Date()
                    runtime.metrics.recordDelivered(
                        workspaceID: workspace, pluginID: plugin, count: run.count, lags: run.map { .seconds(now.timeIntervalSince($0.event.occurredAt)) })
                    if let observer = delivery.observer {
                        for stored in run { observer(stored.event, plugin) }
                    }
                    lane.position = end
                    lane.attempts = 0
                    heldBox.withLock { $0?.state = lane }
                    // Saved (and the lease renewed) every `saveInterval` while it delivers, so no other
                    // host takes the lane while this one works on it, and a host that dies repeats little.
                    if let savedAt = heldBox.withLock({ $0?.savedAt }), ContinuousClock.now - savedAt >= Self.saveInterval {
                        guard try await save(lane.position, settings: settings) else { return nil }
                    }
                } catch {
                    // A failure while the store is down is the store's, not the subscriber's: wait for it.
                    try await store.ping()
                    if heldBox.withLock({ $0?.saved }) != lane.position {
                        guard try await save(lane.position, settings: settings) else { return nil }
                    }
                    let reason = String(describing: error)
                    runtime.metrics.recordPluginError(plugin: plugin, kind: "event")
                    if run.count > 1 {
                        // Which of them failed is unknown: each is handed over alone until past the run.
                        logger.warning("event delivery of \(run.count) events failed; delivering them one at a time", metadata: ["error": "\(reason)"])
                        runtime.metrics.recordRetry(workspaceID: workspace, pluginID: plugin)
                        singlyUntilBox.withLock { $0 = run[run.count - 1].position }
                        return nil
                    }
                    let stored = run[0]
                    lane.attempts += 1
                    var logger = logger
                    logger[metadataKey: "event.id"] = "\(stored.event.id)"
                    logger[metadataKey: "event.type"] = "\(stored.event.type)"
                    logger[metadataKey: "attempt"] = "\(lane.attempts)"
                    logger[metadataKey: "error"] = "\(reason)"
                    let policy = subscriber.policy.retry
                    if lane.attempts >= policy.maxAttempts {
                        let letter = DeadLetter(
                            id: UUID().uuidString.lowercased(), pluginID: plugin, event: stored.event, attempts: lane.attempts, lastError: reason, state: .dead,
                            deadAt: Date(), updatedAt: Date())
                        let buried = try await store.buryEvent(
                            letter, workspaceID: workspace, owner: owner, advancingTo: stored.position, until: Date() + settings.lease.seconds)
                        if buried {
                            logger.error("event delivery given up: kept as a dead letter", metadata: ["dead_letter.id": "\(letter.id)"])
                            runtime.metrics.recordDeadLetter(workspaceID: workspace, pluginID: plugin)
                            subscriber.runner.deliveryDropped("event \(stored.event.id) (\(stored.event.type)) became dead letter \(letter.id) after \(lane.attempts) attempts: \(reason)")
                        }
                        return nil
                    }
                    let delay = Self.backoff(policy, attempts: lane.attempts)
                    logger.warning("event delivery failed; retrying", metadata: ["retry.seconds": "\(delay.seconds)"])
                    runtime.metrics.recordRetry(workspaceID: workspace, pluginID: plugin)
                    _ = try await store.failEventDelivery(
                        workspaceID: workspace, pluginID: plugin, owner: owner, attempts: lane.attempts, retryAt: Date() + delay.seconds, error: reason)
                    return delay
                }
            }
            if let held = heldBox.withLock({ $0 }), held.saved != lane.position, ContinuousClock.now - held.savedAt >= Self.saveInterval {
                guard try await save(lane.position, settings: settings) else { return nil }
            }
            keep = true
            return nil
        }

        /// Saves the held lane's position and renews its lease; `false` (and the held state let go) when
        /// another host has taken the lane.
        private func save(_ position: EventPosition, settings: HostConfiguration.EventSettings) async throws -> Bool {
            guard try await advance(to: position, settings: settings) else {
                heldBox.withLock { $0 = nil }
                return false
            }
            heldBox.withLock { held in
                held?.saved = position
                held?.savedAt = .now
            }
            return true
        }

        /// The most payload bytes one call hands over, unless a single event is larger: a run of events
        /// stays well within a worker's frame limit.
        static let maximumRunBytes = 512 * 1024

        private func advance(to position: EventPosition, settings: HostConfiguration.EventSettings) async throws -> Bool {
            try await delivery.runtime.store.advanceEventLane(
                workspaceID: key.workspaceID, pluginID: key.pluginID, owner: delivery.owner, to: position, until: Date() + settings.lease.seconds)
        }

        /// Delivers the dead letters an admin asked to replay; whether there were any.
        private func replay(logger: Logger) async throws -> Bool {
            let runtime = delivery.runtime
            let letters = try await runtime.store.deadLetters(workspaceID: key.workspaceID, pluginID: key.pluginID, states: [.replay], limit: 16)
            for letter in letters {
                if isStopped { break }
                var failure: String?
                if let subscriber = runtime.events.subscriber(key.pluginID, in: key.workspaceID), subscriber.accepts(letter.event.type) {
                    do {
                        try await subscriber.deliver([letter.event])
                        runtime.metrics.recordDelivered(workspaceID: key.workspaceID, pluginID: key.pluginID, count: 1, lags: [])
                    } catch {
                        try await runtime.store.ping()
                        failure = String(describing: error)
                    }
                } else {
                    failure = "the plugin no longer subscribes to \(letter.event.type) here"
                }
                try await runtime.store.replayedDeadLetter(workspaceID: key.workspaceID, id: letter.id, delivered: failure == nil, error: failure, now: Date())
                if let failure {
                    logger.warning("replayed dead letter failed again", metadata: ["dead_letter.id": "\(letter.id)", "error": "\(failure)"])
                } else {
                    logger.info("dead letter replayed", metadata: ["dead_letter.id": "\(letter.id)"])
                }
            }
            return !letters.isEmpty
        }

        /// Exponential, with full jitter over the upper half: `initial × 2^(attempts-1)`, capped, times 0.5 to 1.
        static func backoff(_ policy: HostConfiguration.RetryPolicy, attempts: Int) -> Duration {
            var delay = policy.initialDelay
            for _ in 1..<max(1, attempts) where delay < policy.maxDelay { delay *= 2 }
            return min(delay, policy.maxDelay) * Double.random(in: 0.5...1.0)
        }
    }
}
