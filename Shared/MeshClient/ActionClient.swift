import Foundation
public import MeshCore
import MeshProto
import Metrics
public import Nats

/// Sends actions to agents, wherever they run: resolves the subject from the agent id
/// (`<prefix>.agent.<shard>.<id>.act`), stamps the shard epoch it knows, and retries —
/// with capped exponential backoff, within the caller's deadline — every answer that
/// means "not executed, try again": no responders (no owner yet), `unavailable` (shard in
/// transit), `stale_epoch` (the two sides disagree on the owner). A caller therefore never
/// sees a shard move, only a slower answer. Anything that may have executed (a timeout,
/// `busy`) is returned as it is: the client never runs an action twice.
///
/// ```swift
/// let client = ActionClient(connection: nats, subjects: subjects, shardMap: shardMap, shards: directory)
/// let reply = try await client.act(try AgentID("counter-1"), action: "add", payload: Array(#"{"by":1}"#.utf8))
/// ```
public final class ActionClient: Sendable {
    /// The longest action name.
    public static let maxActionNameBytes = 128
    /// How long one attempt of an idempotent action waits before it is sent again.
    public static let idempotentAttemptTimeout = Duration.seconds(1)

    private let connection: NatsConnection
    private let subjects: Subjects
    private let shardMap: ShardMap
    private let shards: ShardDirectory?
    private let retries = Counter(label: "mesh_action_client_retries_total")

    /// - Parameter shards: the shard directory for epoch stamping; nil sends epoch 0
    ///   ("any owner"), which the owner accepts.
    public init(connection: NatsConnection, subjects: Subjects, shardMap: ShardMap, shards: ShardDirectory? = nil) {
        self.connection = connection
        self.subjects = subjects
        self.shardMap = shardMap
        self.shards = shards
    }

    /// Runs `action` on `agent` and returns its reply payload.
    /// - Throws: ``MeshError``: the agent's own error reply (`not_found`, `busy`,
    ///   `invalid_argument`, …), `timeout` when no answer came within `timeout`,
    ///   `unavailable` when the agent's shard had no owner until the deadline.
    /// - Parameter idempotent: the action may safely run twice (a read, say): an attempt
    ///   unanswered for ``idempotentAttemptTimeout`` is sent again. A request in flight to a
    ///   worker that crashes is lost without a reply; by default the call then waits out
    ///   `timeout`, as the action may have run (actions are at most once).
    public func act(
        _ agent: AgentID, action: String, payload: [UInt8] = [], timeout: Duration = .seconds(5), idempotent: Bool = false
    ) async throws(MeshError) -> [UInt8] {
        guard !action.isEmpty, action.utf8.count <= Self.maxActionNameBytes else {
            throw MeshError(.invalidArgument, "action name must be 1...\(Self.maxActionNameBytes) bytes")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        let deadlineUnixMs = Int64((Date().timeIntervalSince1970 + timeout.totalSeconds) * 1000)
        let shard = shardMap.shard(of: agent)
        let subject = subjects.action(shard: shard, agent: agent)
        let requestID = TimeOrderedID.make()
        var backoff = Duration.milliseconds(5)
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = ActionRequest.messageType.rawValue
        while true {
            let remaining = deadline - clock.now
            guard remaining > .zero else { throw MeshError(.timeout, "no answer from agent \(agent) within \(timeout)") }
            let request = ActionRequest(
                requestId: requestID, agentId: agent.rawValue, action: action, payload: payload, deadlineUnixMs: deadlineUnixMs,
                shardEpoch: shards?.owner(of: shard).epoch ?? 0)
            let retryError: MeshError
            do {
                let attempt = idempotent ? min(remaining, Self.idempotentAttemptTimeout) : remaining
                let message = try await connection.request(subject, payload: request.serializedBytes(), headers: headers, timeout: attempt)
                let reply: ActionReply
                do { reply = try ActionReply(serializedBytes: message.payload) } catch {
                    throw MeshError(.internalError, "malformed reply from agent \(agent): \(error)")
                }
                if reply.status == .ok { return reply.payload }
                let error = MeshError(reply: reply.error, context: "agent \(agent)")
                guard [.unavailable, .staleEpoch].contains(error.code) else { throw error }
                retryError = error
            } catch let error as NatsError {
                switch error.code {
                case .noResponders: retryError = MeshError(.unavailable, "no worker serves agent \(agent)'s shard \(shard) yet")
                case .timeout where idempotent && clock.now < deadline:
                    retryError = MeshError(.timeout, "no answer from agent \(agent) within \(timeout)", retryAfter: .milliseconds(1))
                case .timeout: throw MeshError(.timeout, "no answer from agent \(agent) within \(timeout)")
                default: throw MeshError(.unavailable, "cannot reach the mesh: \(error)")
                }
            } catch let error as MeshError {
                throw error
            } catch {
                throw MeshError(.internalError, "\(error)")
            }
            retries.increment()
            let pause = min(retryError.retryAfter ?? backoff, deadline - clock.now)
            if pause <= .zero { throw retryError }
            try? await Task.sleep(for: pause)
            backoff = min(backoff * 2, .milliseconds(100))
        }
    }
}
