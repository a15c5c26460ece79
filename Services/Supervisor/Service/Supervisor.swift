import MeshCore
public import MeshRuntime
public import ServiceLifecycle

/// `mesh-supervisor`: node liveness, shard→node assignment, agent restart policy,
/// rebalancing and drain, with one leader elected by a KV lease.
///
/// Today it runs the shared service host only (NATS, discovery, metric snapshots); it
/// makes no assignments yet and does not pretend to.
public enum Supervisor {
    public static let descriptor = ServiceDescriptor(
        name: .supervisor, description: "Cluster brain: node liveness, shard assignment, supervision")

    public static func services(context: ServiceContext) throws -> [any Service] { [] }
}
