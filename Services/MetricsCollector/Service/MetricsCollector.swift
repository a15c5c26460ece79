import MeshCore
public import MeshRuntime
public import ServiceLifecycle

/// `mesh-metrics-collector`: gathers every process's metric snapshots, serves the cluster
/// view to Prometheus, evaluates alert rules and writes rollups to Postgres.
///
/// Today it runs the shared service host only — NATS, Postgres (it owns the rollups),
/// discovery and its own snapshots; it does not aggregate yet.
public enum MetricsCollector {
    public static let descriptor = ServiceDescriptor(
        name: .metricsCollector, description: "Cluster metrics, Prometheus exposition, alerts and rollups", usesPostgres: true)

    public static func services(context: ServiceContext) throws -> [any Service] { [] }
}
