import MeshCore
public import MeshRuntime
public import ServiceLifecycle

/// `mesh-registry`: owns the agent directory (KV `mesh_agents`, its Postgres mirror and
/// the label/node indexes).
///
/// Today it runs the shared service host only — NATS, Postgres (it owns data there),
/// discovery, metric snapshots — and serves no registry verbs yet; it does not pretend to.
public enum Registry {
    /// How the host describes and starts this service.
    public static let descriptor = ServiceDescriptor(
        name: .registry, description: "Agent directory: specs, status, placement, label and node indexes", usesPostgres: true)

    /// The service's own long-running parts.
    public static func services(context: ServiceContext) throws -> [any Service] { [] }
}
