public import Hummingbird

/// What an API key may do. Roles are ordered: a higher role may do everything a lower one may.
///
/// | role | may |
/// |---|---|
/// | `viewer` | read (GET) |
/// | `operator` | also change agents and invoke actions |
/// | `admin` | also manage API keys |
public enum Role: String, Sendable, CaseIterable, Comparable {
    case viewer
    case `operator`
    case admin

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// The gateway's operations, one per route.
public enum Operation: String, Sendable, CaseIterable {
    case dashboard, health, ready, metrics, openAPI
    case listAgents, createAgent, getAgent, updateAgent, deleteAgent
    case invokeAction, agentEvents
    case liveEvents
    case listNodes, drainNode, undrainNode
    case submitTask, listTasks, getTask, cancelTask, listDeadLetters, retryDeadLetter
    case listKeys, createKey, revokeKey
    case listAlerts, metricsSummary, metricsSeries
}

/// One route: method, path (OpenAPI template form, `{name}` for a parameter), the role it
/// needs (nil: public), and its operation.
public struct GatewayRoute: Sendable, Hashable {
    public var method: HTTPRequest.Method
    public var path: String
    public var role: Role?
    public var operation: Operation

    /// Whether the route changes something (audited).
    public var isMutation: Bool { method != .get && method != .head }
}

/// The single route table: the router is built from it, and a test checks the OpenAPI
/// document against it (every route documented, every documented route served).
public enum GatewayRoutes {
    public static let all: [GatewayRoute] = [
        GatewayRoute(method: .get, path: "/", role: nil, operation: .dashboard),
        GatewayRoute(method: .get, path: "/health", role: nil, operation: .health),
        GatewayRoute(method: .get, path: "/ready", role: nil, operation: .ready),
        GatewayRoute(method: .get, path: "/metrics", role: nil, operation: .metrics),
        GatewayRoute(method: .get, path: "/openapi.json", role: nil, operation: .openAPI),
        GatewayRoute(method: .get, path: "/api/v1/agents", role: .viewer, operation: .listAgents),
        GatewayRoute(method: .post, path: "/api/v1/agents", role: .operator, operation: .createAgent),
        GatewayRoute(method: .get, path: "/api/v1/agents/{id}", role: .viewer, operation: .getAgent),
        GatewayRoute(method: .put, path: "/api/v1/agents/{id}", role: .operator, operation: .updateAgent),
        GatewayRoute(method: .delete, path: "/api/v1/agents/{id}", role: .operator, operation: .deleteAgent),
        GatewayRoute(method: .post, path: "/api/v1/agents/{id}/actions/{name}", role: .operator, operation: .invokeAction),
        GatewayRoute(method: .get, path: "/api/v1/agents/{id}/events", role: .viewer, operation: .agentEvents),
        GatewayRoute(method: .get, path: "/api/v1/events", role: .viewer, operation: .liveEvents),
        GatewayRoute(method: .get, path: "/api/v1/nodes", role: .viewer, operation: .listNodes),
        GatewayRoute(method: .post, path: "/api/v1/nodes/{id}/drain", role: .operator, operation: .drainNode),
        GatewayRoute(method: .post, path: "/api/v1/nodes/{id}/undrain", role: .operator, operation: .undrainNode),
        GatewayRoute(method: .get, path: "/api/v1/tasks", role: .viewer, operation: .listTasks),
        GatewayRoute(method: .post, path: "/api/v1/tasks", role: .operator, operation: .submitTask),
        GatewayRoute(method: .get, path: "/api/v1/tasks/{id}", role: .viewer, operation: .getTask),
        GatewayRoute(method: .post, path: "/api/v1/tasks/{id}/cancel", role: .operator, operation: .cancelTask),
        GatewayRoute(method: .get, path: "/api/v1/dead-letters", role: .viewer, operation: .listDeadLetters),
        GatewayRoute(method: .post, path: "/api/v1/dead-letters/{id}/retry", role: .operator, operation: .retryDeadLetter),
        GatewayRoute(method: .get, path: "/api/v1/keys", role: .admin, operation: .listKeys),
        GatewayRoute(method: .post, path: "/api/v1/keys", role: .admin, operation: .createKey),
        GatewayRoute(method: .delete, path: "/api/v1/keys/{id}", role: .admin, operation: .revokeKey),
        GatewayRoute(method: .get, path: "/api/v1/alerts", role: .viewer, operation: .listAlerts),
        GatewayRoute(method: .get, path: "/api/v1/metrics/summary", role: .viewer, operation: .metricsSummary),
        GatewayRoute(method: .get, path: "/api/v1/metrics/series", role: .viewer, operation: .metricsSeries),
    ]
}
