import Prometheus
import Synchronization

/// One plugin's request counter and latency histogram per status. Bound plugins hold theirs, so that
/// recording a request looks its handles up by status alone, not by the plugin's id under the metrics'
/// shared lock.
final class PluginRequestMetrics: Sendable {
    private struct Handles {
        var count: Counter
        var latency: DurationHistogram
    }

    let plugin: String
    private let registry: PrometheusCollectorRegistry
    private let handles = Mutex<[Int: Handles]>([:])

    init(plugin: String, registry: PrometheusCollectorRegistry) {
        self.plugin = plugin
        self.registry = registry
    }

    /// Counts a request and records its latency.
    func record(status: Int, duration: Duration) {
        let handle = handles.withLock { handles in
            if let handle = handles[status] { return handle }
            let labels = [("plugin", plugin), ("status", String(status))]
            let handle = Handles(
                count: registry.makeCounter(descriptor: HostMetrics.requests, labels: labels),
                latency: registry.makeDurationHistogram(descriptor: HostMetrics.latency, labels: labels, buckets: HostMetrics.buckets)
            )
            handles[status] = handle
            return handle
        }
        handle.count.increment()
        handle.latency.record(duration)
    }
}
