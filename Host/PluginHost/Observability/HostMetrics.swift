import Prometheus
import Synchronization

/// The host's Prometheus metrics, kept in a registry of its own (no global metrics bootstrap), served
/// as text at `/metrics`.
public final class HostMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private struct RequestKey: Hashable {
        var plugin: String
        var status: Int
    }
    private struct RequestHandles {
        var count: Counter
        var latency: DurationHistogram
    }
    private let handles = Mutex<[RequestKey: RequestHandles]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Counts a request to a plugin and records its latency.
    public func recordRequest(plugin: String, status: Int, duration: Duration) {
        let key = RequestKey(plugin: plugin, status: status)
        let handle = handles.withLock { handles in
            if let handle = handles[key] { return handle }
            let labels = [("plugin", plugin), ("status", String(status))]
            let handle = RequestHandles(
                count: registry.makeCounter(descriptor: Self.requests, labels: labels),
                latency: registry.makeDurationHistogram(descriptor: Self.latency, labels: labels, buckets: Self.buckets)
            )
            handles[key] = handle
            return handle
        }
        handle.count.increment()
        handle.latency.record(duration)
    }

    /// Counts a plugin failure: `kind` is `error` (it threw), `timeout`, or `event` (a delivery failed).
    public func recordPluginError(plugin: String, kind: String) {
        registry.makeCounter(descriptor: Self.errors, labels: [("plugin", plugin), ("kind", kind)]).increment()
    }

    /// Records how long checking and loading a plugin's library took.
    public func recordLoad(plugin: String, duration: Duration) {
        registry.makeGauge(descriptor: Self.load, labels: [("plugin", plugin)]).set(duration.seconds)
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> String {
        registry.emitToString()
    }

    private static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_requests", unitName: "total", helpText: "Requests routed to plugins, by plugin and status.")
    }
    private static var latency: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_request_duration", unitName: "seconds", helpText: "Latency of requests routed to plugins.")
    }
    private static var errors: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_errors", unitName: "total", helpText: "Plugin failures: thrown errors, timeouts, failed event deliveries.")
    }
    private static var load: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "plugin_host", metricName: "plugin_load_duration", unitName: "seconds", helpText: "Time to check and load a plugin library.")
    }
    private static let buckets: [Duration] = [
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
