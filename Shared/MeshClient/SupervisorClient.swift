public import MeshCore
public import MeshProto
public import Nats

/// The typed client of the supervisor leader: its node table (`<prefix>.sup.nodes`) and
/// drains (`<prefix>.sup.drain`).
///
/// Every supervisor instance listens on these subjects but only the leader answers, so a
/// request reaches whoever leads now; with no leader (an election in progress) it times out.
///
/// ```swift
/// let supervisor = SupervisorClient(connection: nats, subjects: subjects)
/// let drained = try await supervisor.drain(try NodeID("worker-3"))
/// while try await supervisor.node(try NodeID("worker-3"))?.shards.isEmpty == false { … }
/// ```
public final class SupervisorClient: Sendable {
    private let connection: NatsConnection
    private let subjects: Subjects
    private let timeout: Duration

    /// - Parameter timeout: how long one request waits for the leader's reply.
    public init(connection: NatsConnection, subjects: Subjects, timeout: Duration = .seconds(2)) {
        self.connection = connection
        self.subjects = subjects
        self.timeout = timeout
    }

    /// The leader's node table: every node heard recently, alive or not, sorted by id.
    /// - Throws: ``MeshError`` `unavailable` with no supervisor, `timeout` with no leader.
    public func nodes() async throws(MeshError) -> ListNodesReply {
        let reply: ListNodesReply = try await call(.nodes, ListNodesRequest())
        if let error = reply.error { throw MeshError(reply: error, context: "the supervisor") }
        return reply
    }

    /// One node of ``nodes()``, `nil` when the leader does not know it.
    public func node(_ id: NodeID) async throws(MeshError) -> NodeInfo? {
        try await nodes().nodes.first { $0.nodeId == id.rawValue }
    }

    /// Drains `node`: it gets no new shards and its shards move to other nodes over the next
    /// planning rounds (the reply comes at once; poll ``node(_:)`` until it owns none). The
    /// drain lasts until ``undrain(_:)`` or until the node restarts.
    /// - Returns: the node as the leader sees it, and how many other nodes can take its shards
    ///   (0: they cannot move and stay where they are).
    /// - Throws: ``MeshError`` `not_found` for a node the leader has not heard.
    public func drain(_ node: NodeID) async throws(MeshError) -> (node: NodeInfo, candidates: Int) {
        try await send(DrainNodeRequest(nodeId: node.rawValue, undrain: false))
    }

    /// Ends an operator's drain of `node`: it may receive shards again.
    public func undrain(_ node: NodeID) async throws(MeshError) -> (node: NodeInfo, candidates: Int) {
        try await send(DrainNodeRequest(nodeId: node.rawValue, undrain: true))
    }

    private func send(_ request: DrainNodeRequest) async throws(MeshError) -> (node: NodeInfo, candidates: Int) {
        let reply: DrainNodeReply = try await call(.drain, request)
        if let error = reply.error { throw MeshError(reply: error, context: "the supervisor") }
        guard let node = reply.node else { throw MeshError(.internalError, "the supervisor replied with neither a node nor an error") }
        return (node, Int(reply.candidates))
    }

    private func call<Request: MeshMessage, Reply: MeshMessage>(_ verb: SupervisorVerb, _ request: Request) async throws(MeshError) -> Reply {
        do {
            return try await ServiceRequest.call(connection, subjects.supervisor(verb: verb), request, timeout: timeout, service: "the supervisor")
        } catch where error.code == .timeout {
            throw MeshError(.unavailable, "no supervisor leader answered within \(timeout) (an election may be in progress)", retryAfter: .seconds(1))
        }
    }
}
