import CoreMetrics
import Logging
public import MeshCore
import Metrics
import Prometheus
import Synchronization

/// The process-wide logging and metrics backends, installed once.
///
/// swift-metrics feeds two backends at once: Prometheus (the process's `/metrics`) and a
/// ``SnapshotMetricsFactory`` (the `MetricSnapshot` published to the collector).
public final class Observability: Sendable {
    /// The Prometheus registry behind `/metrics`.
    let prometheus: PrometheusCollectorRegistry
    /// The snapshot backend.
    public let snapshots: SnapshotMetricsFactory

    private static let installed = Mutex<Observability?>(nil)

    private init() {
        prometheus = PrometheusCollectorRegistry()
        snapshots = SnapshotMetricsFactory()
    }

    /// Installs JSON logging at the configured level and the metrics backends; later calls
    /// return the first installation.
    public static func bootstrap(options: CommonOptions) -> Observability {
        installed.withLock { current in
            if let current { return current }
            JSONLogHandler.bootstrap(level: LogLevelParser.parse(options.logLevel) ?? .info, format: options.logFormat)
            let observability = Observability()
            var prometheusFactory = PrometheusMetricsFactory(registry: observability.prometheus)
            prometheusFactory.defaultDurationHistogramBuckets = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                .seconds(1), .seconds(2), .seconds(5), .seconds(10),
            ]
            MetricsSystem.bootstrap(MultiplexMetricsHandler(factories: [prometheusFactory, observability.snapshots]))
            current = observability
            return observability
        }
    }

    /// The Prometheus text exposition of every metric of this process.
    public func prometheusExposition() -> [UInt8] { prometheus.emitToBuffer() }
}
