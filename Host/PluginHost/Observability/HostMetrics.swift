import Prometheus
import Synchronization

/// The host's Prometheus metrics, kept in a registry of its own (no global metrics bootstrap), served
/// as text at `/metrics`.
public final class HostMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let plugins = Mutex<[String: PluginRequestMetrics]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Counts a request to a plugin and records its latency.
    public func recordRequest(plugin: String, status: Int, duration: Duration) {
        requests(plugin: plugin).record(status: status, duration: duration)
    }

    /// The request metrics of `plugin`, made once; the request path keeps them with the bound plugin.
    func requests(plugin: String) -> PluginRequestMetrics {
        plugins.withLock { plugins in
            if let metrics = plugins[plugin] { return metrics }
            let metrics = PluginRequestMetrics(plugin: plugin, registry: registry)
            plugins[plugin] = metrics
            return metrics
        }
    }

    /// Counts a plugin failure: `kind` is `error` (it threw), `timeout`, or `event` (a delivery failed).
    public func recordPluginError(plugin: String, kind: String) {
        registry.makeCounter(descriptor: Self.errors, labels: [("plugin", plugin), ("kind", kind)]).increment()
    }

    // MARK: Events, per workspace and subscriber

    func recordPublished(workspaceID: String, count: Int) {
        registry.makeCounter(descriptor: Self.published, labels: [("workspace", workspaceID)]).increment(by: Int64(count))
    }

    /// Events delivered in one call, and for each how long after it was published (none for a replay).
    func recordDelivered(workspaceID: String, pluginID: String, count: Int, lags: [Duration]) {
        let labels = [("workspace", workspaceID), ("plugin", pluginID)]
        registry.makeCounter(descriptor: Self.delivered, labels: labels).increment(by: Int64(count))
        guard !lags.isEmpty else { return }
        let histogram = registry.makeDurationHistogram(descriptor: Self.lag, labels: labels, buckets: Self.lagBuckets)
        for lag in lags { histogram.record(max(.zero, lag)) }
    }

    /// From a few milliseconds (a lane that keeps up) to minutes (retries, a backlog after an outage).
    static let lagBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
    ]

    func recordRetry(workspaceID: String, pluginID: String) {
        registry.makeCounter(descriptor: Self.retried, labels: [("workspace", workspaceID), ("plugin", pluginID)]).increment()
    }

    func recordDeadLetter(workspaceID: String, pluginID: String) {
        registry.makeCounter(descriptor: Self.deadLettered, labels: [("workspace", workspaceID), ("plugin", pluginID)]).increment()
    }

    func recordBacklog(workspaceID: String, pluginID: String, count: Int) {
        registry.makeGauge(descriptor: Self.backlog, labels: [("workspace", workspaceID), ("plugin", pluginID)]).set(Double(count))
    }

    /// Records how long checking and loading a plugin's library took.
    public func recordLoad(plugin: String, duration: Duration) {
        registry.makeGauge(descriptor: Self.load, labels: [("plugin", plugin)]).set(duration.seconds)
    }

    /// A worker process's figures, as `GET /v1/plugins/{id}` shows them (`worker`).
    func recordWorker(plugin: String, up: Bool, restarts: Int, crashes: Int, quarantined: Bool, residentBytes: Int?) {
        let labels = [("plugin", plugin)]
        registry.makeGauge(descriptor: Self.workerUp, labels: labels).set(up ? 1.0 : 0.0)
        registry.makeGauge(descriptor: Self.workerRestarts, labels: labels).set(Double(restarts))
        registry.makeGauge(descriptor: Self.workerCrashes, labels: labels).set(Double(crashes))
        registry.makeGauge(descriptor: Self.workerQuarantined, labels: labels).set(quarantined ? 1.0 : 0.0)
        if let residentBytes { registry.makeGauge(descriptor: Self.workerMemory, labels: labels).set(Double(residentBytes)) }
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> String {
        registry.emitToString()
    }

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_requests", unitName: "total", helpText: "Requests routed to plugins, by plugin and status.")
    }
    static var latency: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_request_duration", unitName: "seconds", helpText: "Latency of requests routed to plugins.")
    }
    private static var errors: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_errors", unitName: "total", helpText: "Plugin failures: thrown errors, timeouts, failed event deliveries.")
    }
    private static var published: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "plugin_host", metricName: "events_published", unitName: "total", helpText: "Events stored, by workspace.")
    }
    private static var delivered: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "event_deliveries", unitName: "total", helpText: "Events delivered, by workspace and subscribing plugin.")
    }
    private static var retried: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "event_retries", unitName: "total", helpText: "Failed event deliveries scheduled for another attempt.")
    }
    private static var deadLettered: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "event_dead_letters", unitName: "total", helpText: "Event deliveries given up after their attempts, kept as dead letters.")
    }
    private static var backlog: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "event_queue_depth", helpText: "Events waiting for a subscriber in a workspace, at the last count (every 10 s).")
    }
    private static var lag: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "event_delivery_lag", unitName: "seconds", helpText: "Time from an event's publish to its delivery to the subscriber.")
    }
    private static var load: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_load_duration", unitName: "seconds", helpText: "Time to check and load a plugin library.")
    }
    private static var workerUp: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "plugin_host", metricName: "worker_up", helpText: "1 while a plugin's worker process runs, else 0.")
    }
    private static var workerRestarts: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "plugin_host", metricName: "worker_restarts", helpText: "Restarts of a plugin's worker after a crash, since the host started.")
    }
    private static var workerCrashes: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "worker_crashes", helpText: "Ends of a plugin's worker it did not ask for (crashes, exits, timeouts), since the host started.")
    }
    private static var workerQuarantined: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "plugin_host", metricName: "worker_quarantined", helpText: "1 while a plugin is quarantined after repeated worker crashes.")
    }
    private static var workerMemory: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "worker_resident_memory", unitName: "bytes", helpText: "Resident memory of a plugin's worker, at its last health check.")
    }
    static let buckets: [Duration] = [
        .microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50),
        .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10),
    ]
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
