public import MeshCore

/// Sends actions from one agent to others. The worker implements it (local cells
/// directly, remote ones over NATS); tests use an in-process one. Kinds reach it through
/// ``AgentContext/dispatcher`` — ``FanoutKind`` is built on it.
///
/// Implementations must answer by `deadline` (a `timeout` error then) and should stop
/// waiting when the calling task is cancelled.
///
/// ```swift
/// let ids = try await context.dispatcher.agents(matching: try LabelSelector("role=expert"),
///                                               limit: 16, deadline: context.deadline())
/// for id in ids {
///     let reply = try await context.dispatcher.send("ask", payload: question, to: id, deadline: context.deadline())
/// }
/// ```
public protocol ActionDispatcher: Sendable {
    /// Sends `action` to agent `agent` and waits for its reply.
    /// - Throws: ``MeshError`` as the target (or the way to it) answered: `not_found`,
    ///   `busy`, `timeout`, `unavailable`, or the target's own error.
    func send(_ action: String, payload: [UInt8], to agent: AgentID, deadline: ContinuousClock.Instant) async throws(MeshError)
        -> [UInt8]

    /// The ids of the agents whose labels match `selector` (MeshCore's selector syntax),
    /// at most `limit` of them, in a stable order (sorted by id).
    /// - Throws: ``MeshError`` when the directory cannot be asked in time.
    func agents(matching selector: LabelSelector, limit: Int, deadline: ContinuousClock.Instant) async throws(MeshError) -> [AgentID]
}

/// The dispatcher of a runtime that cannot reach other agents: every call answers
/// `unavailable`. The default until the worker injects its own.
public struct UnavailableDispatcher: ActionDispatcher {
    public init() {}

    public func send(_ action: String, payload: [UInt8], to agent: AgentID, deadline: ContinuousClock.Instant) async throws(MeshError)
        -> [UInt8]
    {
        throw MeshError(.unavailable, "this runtime has no action dispatcher; agent \(agent) cannot be reached")
    }

    public func agents(matching selector: LabelSelector, limit: Int, deadline: ContinuousClock.Instant) async throws(MeshError) -> [AgentID] {
        throw MeshError(.unavailable, "this runtime has no action dispatcher; label selectors cannot be resolved")
    }
}
