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
/// Stamping is what keeps a stale owner from acknowledging work: a worker that lost a shard
/// without knowing it yet (frozen, or slow to see the move) still holds the old epoch and
/// refuses a request stamped with the newer one, so the request is sent again and the new
/// owner runs it. A client whose directory lags behind gets `stale_epoch` with the owner's
/// epoch and stamps that one on its next attempt.
///
/// ```swift
/// let client = try await ActionClient.watchingShards(connection: nats, subjects: subjects, shardMap: shardMap)
/// defer { client.stop() }
/// let reply = try await client.act(try AgentID("counter-1"), action: "add", payload: Array(#"{"by":1}"#.utf8))
/// ```
public final class ActionClient: Sendable {
    /// The longest action name.
    public static let maxActionNameBytes = 128
    /// How long one attempt of an idempotent action waits by default before it is sent again.
    public static let idempotentAttemptTimeout = Duration.seconds(1)

    private let connection: NatsConnection
    private let subjects: Subjects
    private let shardMap: ShardMap
    private let shards: ShardDirectory?
    private let attemptTimeout: Duration
    private let retries = Counter(label: "mesh_action_client_retries_total")

    /// - Parameters:
    ///   - shards: the shard directory for epoch stamping; nil sends epoch 0 ("any owner"),
    ///     which the owner accepts.
    ///   - idempotentAttemptTimeout: how long one attempt of an idempotent action waits
    ///     before it is sent again.
    public init(
        connection: NatsConnection, subjects: Subjects, shardMap: ShardMap, shards: ShardDirectory? = nil,
        idempotentAttemptTimeout: Duration = ActionClient.idempotentAttemptTimeout
    ) {
        self.connection = connection
        self.subjects = subjects
        self.shardMap = shardMap
        self.shards = shards
        self.attemptTimeout = idempotentAttemptTimeout
    }

    /// A client with a shard directory of its own (a watch of KV `mesh_shards`, loaded before
    /// this returns) that stamps every request with the epoch it knows. ``stop()`` ends the
    /// watch.
    /// - Throws: `NatsError` when the bucket cannot be read (JetStream unavailable, or no
    ///   mesh set up yet).
    public static func watchingShards(connection: NatsConnection, subjects: Subjects, shardMap: ShardMap) async throws(NatsError) -> ActionClient {
        let kv = try connection.jetStream().keyValue(subjects.shardsBucket)
        let directory = try ShardDirectory(kv: kv, shardCount: shardMap.shardCount)
        Task { await directory.run() }
        await directory.waitUntilLoaded()
        return ActionClient(connection: connection, subjects: subjects, shardMap: shardMap, shards: directory)
    }

    /// Stops the shard directory's watch (when the client has one).
    public func stop() { shards?.stop() }

    /// Runs `action` on `agent` and returns its reply payload.
    /// - Throws: ``MeshError``: the agent's own error reply (`not_found`, `busy`,
    ///   `invalid_argument`, …), `timeout` when no answer came within `timeout`,
    ///   `unavailable` when the agent's shard had no owner until the deadline.
    /// - Parameter idempotent: the action may safely run twice (a read, say): an attempt
    ///   unanswered for ``idempotentAttemptTimeout`` is sent again, and with a shard
    ///   directory also as soon as the agent's shard moves (a request in flight to a worker
    ///   that crashes is lost without a reply; the move is the first sign of it). Otherwise
    ///   the call waits out `timeout` in that case, as the action may have run (actions are
    ///   at most once).
    public func act(
        _ agent: AgentID, action: String, payload: [UInt8] = [], timeout: Duration = .seconds(5), idempotent: Bool = false
    ) async throws(MeshError) -> [UInt8] {
        try Self.checkName(action)
        return try await attempts(Call(client: self, agent: agent, action: action, payload: payload, timeout: timeout), idempotent: idempotent)
    }

    /// ``act(_:action:payload:timeout:idempotent:)`` (not idempotent) without a task for the
    /// common case: the first attempt's outcome reaches `completion` on the thread that has
    /// it (see ``NatsConnection/request(_:payload:headers:timeout:completion:)``); only an
    /// answer that means "try again" moves the call into a task that retries as `act` does.
    /// `completion` runs exactly once and must not block.
    public func act(
        _ agent: AgentID, action: String, payload: [UInt8], timeout: Duration,
        completion: @escaping @Sendable (Result<[UInt8], MeshError>) -> Void
    ) {
        do throws(MeshError) { try Self.checkName(action) } catch { return completion(.failure(error)) }
        let call = Call(client: self, agent: agent, action: action, payload: payload, timeout: timeout)
        connection.request(call.subject, payload: call.request(), headers: call.headers, timeout: timeout) { [self] result in
            switch call.outcome(result, idempotent: false) {
            case .done(let outcome): completion(outcome)
            case .retry(let error, let ownerEpoch):
                retries.increment()
                Task {
                    do throws(MeshError) {
                        completion(.success(try await attempts(call, idempotent: false, after: (error, ownerEpoch))))
                    } catch {
                        completion(.failure(error))
                    }
                }
            }
        }
    }

    private static func checkName(_ action: String) throws(MeshError) {
        guard !action.isEmpty, action.utf8.count <= maxActionNameBytes else {
            throw MeshError(.invalidArgument, "action name must be 1...\(maxActionNameBytes) bytes")
        }
    }

    /// Sends `call` until it is answered, fails for good, or its deadline passes.
    /// - Parameter after: the "try again" answer of an attempt already made, with the epoch
    ///   its owner reported.
    private func attempts(_ call: Call, idempotent: Bool, after first: (MeshError, UInt64)? = nil) async throws(MeshError) -> [UInt8] {
        var backoff = Duration.milliseconds(5)
        var retryError = first?.0
        var ownerEpoch = first?.1 ?? 0
        while true {
            if let error = retryError {
                let pause = min(error.retryAfter ?? backoff, call.deadline - ContinuousClock.now)
                if pause <= .zero { throw error }
                try? await Task.sleep(for: pause)
                backoff = min(backoff * 2, .milliseconds(100))
            }
            let remaining = call.deadline - ContinuousClock.now
            // Out of time after a "try again": that answer says more than a timeout.
            guard remaining > .zero else { throw retryError ?? call.timedOut }
            let attempt = idempotent ? min(remaining, attemptTimeout) : remaining
            let request = call.request(atLeast: ownerEpoch)
            let send: @Sendable () async -> Result<NatsMessage, NatsError> = { [connection] in
                do throws(NatsError) { return .success(try await connection.request(call.subject, payload: request, headers: call.headers, timeout: attempt)) } catch {
                    return .failure(error)
                }
            }
            let result: Result<NatsMessage, NatsError>
            if idempotent, let shards {
                // Sent again as soon as the shard moves: an owner that died with the request
                // never answers it.
                let epoch = shards.owner(of: call.shard).epoch
                let first = await withTaskGroup(of: Result<NatsMessage, NatsError>?.self) { group in
                    group.addTask { await send() }
                    group.addTask {
                        await shards.waitForMove(of: call.shard, from: epoch)
                        return nil
                    }
                    defer { group.cancelAll() }
                    return await group.next() ?? nil
                }
                guard let first else {
                    retries.increment()
                    retryError = MeshError(.unavailable, "agent \(call.agent)'s shard \(call.shard) moved", retryAfter: .milliseconds(1))
                    continue
                }
                result = first
            } else {
                result = await send()
            }
            switch call.outcome(result, idempotent: idempotent) {
            case .done(let outcome): return try outcome.get()
            case .retry(let error, let epoch):
                retries.increment()
                retryError = error
                ownerEpoch = max(ownerEpoch, epoch)
            }
        }
    }

    /// One action call across its attempts: the subject, the request id they share, the deadline.
    private struct Call: Sendable {
        let agent: AgentID
        let action: String
        let payload: [UInt8]
        let timeout: Duration
        let deadline: ContinuousClock.Instant
        let deadlineUnixMs: Int64
        let shard: Int
        let subject: String
        let requestID = TimeOrderedID.make()
        let headers: NatsHeaders
        let shards: ShardDirectory?

        init(client: ActionClient, agent: AgentID, action: String, payload: [UInt8], timeout: Duration) {
            self.agent = agent
            self.action = action
            self.payload = payload
            self.timeout = timeout
            self.deadline = ContinuousClock.now + timeout
            self.deadlineUnixMs = Int64((Date().timeIntervalSince1970 + timeout.totalSeconds) * 1000)
            self.shard = client.shardMap.shard(of: agent)
            self.subject = client.subjects.action(shard: shard, agent: agent)
            var headers = NatsHeaders()
            headers[MeshHeader.messageType] = ActionRequest.messageType.rawValue
            self.headers = headers
            self.shards = client.shards
        }

        var timedOut: MeshError { MeshError(.timeout, "no answer from agent \(agent) within \(timeout)") }

        /// The request of the next attempt, stamped with the shard epoch known now (at least
        /// `atLeast`, an epoch an owner reported; 0 without a directory: "any owner").
        func request(atLeast: UInt64 = 0) -> [UInt8] {
            ActionRequest(
                requestId: requestID, agentId: agent.rawValue, action: action, payload: payload, deadlineUnixMs: deadlineUnixMs,
                shardEpoch: shards.map { max($0.owner(of: shard).epoch, atLeast) } ?? 0
            ).serializedBytes()
        }

        enum Outcome {
            case done(Result<[UInt8], MeshError>)
            /// Not executed; worth another attempt. `ownerEpoch`: the newer epoch a
            /// `stale_epoch` answer reported (0 otherwise).
            case retry(MeshError, ownerEpoch: UInt64)
        }

        /// What an attempt's answer means: the reply payload, a final error, or "try again".
        func outcome(_ result: Result<NatsMessage, NatsError>, idempotent: Bool) -> Outcome {
            switch result {
            case .success(let message):
                let reply: ActionReply
                do { reply = try ActionReply(serializedBytes: message.payload) } catch {
                    return .done(.failure(MeshError(.internalError, "malformed reply from agent \(agent): \(error)")))
                }
                if reply.status == .ok { return .done(.success(reply.payload)) }
                let error = MeshError(reply: reply.error, context: "agent \(agent)")
                guard [.unavailable, .staleEpoch].contains(error.code) else { return .done(.failure(error)) }
                return .retry(error, ownerEpoch: error.code == .staleEpoch ? reply.shardEpoch : 0)
            case .failure(let error):
                switch error.code {
                case .noResponders:
                    return .retry(MeshError(.unavailable, "no worker serves agent \(agent)'s shard \(shard) yet"), ownerEpoch: 0)
                case .timeout where idempotent && ContinuousClock.now < deadline:
                    return .retry(MeshError(.timeout, "no answer from agent \(agent) within \(timeout)", retryAfter: .milliseconds(1)), ownerEpoch: 0)
                case .timeout: return .done(.failure(timedOut))
                default: return .done(.failure(MeshError(.unavailable, "cannot reach the mesh: \(error)")))
                }
            }
        }
    }
}
