import MeshCore
public import MeshRuntime
public import ServiceLifecycle

/// `mesh-gateway`: the HTTP/JSON API, live events, auth, rate limits and dashboard.
///
/// Today it runs the shared service host only (NATS, discovery, metric snapshots, and
/// `/health` + `/metrics` on `--metrics-port`); the API is not served yet.
public enum Gateway {
    public static let descriptor = ServiceDescriptor(name: .gateway, description: "HTTP API, live events and dashboard")

    public static func services(context: ServiceContext) throws -> [any Service] { [] }
}
