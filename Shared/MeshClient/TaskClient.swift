import Dispatch
public import Foundation
public import MeshCore
public import MeshProto
public import Nats

/// What to run: the input of ``TaskClient/submit(_:)``.
public struct TaskSubmission: Sendable, Hashable {
    /// The agent that runs it.
    public var agent: AgentID
    /// The action (1…128 bytes).
    public var action: String
    /// The action's input (≤ 256 KiB).
    public var payload: [UInt8]
    public var priority: TaskPriority
    /// Past this time the task is not run; it is marked expired. Nil = none.
    public var deadline: Date?
    /// Attempts before it is dead-lettered (1…100); nil = 5.
    public var maxAttempts: Int?
    /// Submissions of the same agent with the same key are one task (1…128 bytes).
    public var idempotencyKey: String?

    public init(
        agent: AgentID, action: String, payload: [UInt8] = [], priority: TaskPriority = .normal, deadline: Date? = nil,
        maxAttempts: Int? = nil, idempotencyKey: String? = nil
    ) {
        self.agent = agent
        self.action = action
        self.payload = payload
        self.priority = priority
        self.deadline = deadline
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
    }
}

/// The answer of ``TaskClient/submit(_:)``.
public struct SubmittedTask: Sendable, Hashable {
    /// The task id (time-ordered UUIDv7); the original one for a repeated idempotency key.
    public var taskId: String
    /// True when an earlier submission with the same idempotency key (or id) was found.
    public var duplicate: Bool
}

/// A page of the task history.
public struct TaskPage: Sendable, Hashable {
    /// Newest first.
    public var tasks: [TaskRecord]
    /// Cursor of the next page; nil on the last page.
    public var nextCursor: String?
}

/// A dead-lettered task with its place in stream `MESH_TASKS_DLQ`.
public struct DeadLetterEntry: Sendable, Hashable {
    /// The stream sequence (what `retry` removes).
    public var sequence: UInt64
    public var deadLetter: DeadLetter
}

/// The client of durable tasks: submit (stream `MESH_TASKS`, idempotent), read the history
/// (`<prefix>.tasks.query`, served by the registry from PostgreSQL), cancel, and the
/// dead-letter queue.
///
/// ```swift
/// let tasks = TaskClient(connection: nats, subjects: subjects, shardMap: shardMap)
/// let submitted = try await tasks.submit(
///     TaskSubmission(agent: try AgentID("work-1"), action: "run", payload: body, idempotencyKey: "order-42"))
/// let record = try await tasks.get(submitted.taskId)     // state, attempts, result or error
/// ```
///
/// **Idempotency.** Without a key, the task id is the `Nats-Msg-Id`, so a retried publish is
/// stored once. With a key, KV `mesh_task_keys` maps `<agent>.<hex(key)>` to the first task
/// id (created with compare-and-set, kept 24 h); a repeated submission gets that id back.
/// Within the stream's duplicate window (2 min, ≥ ``retryHorizon``) it is published again with
/// the original id as `Nats-Msg-Id` — stored once, and stored at all if the first submitter
/// died between the key and the publish; after the window it is not published again.
///
/// Every failure is a ``MeshError``: `invalid_id`, `invalid_argument`, `too_large`,
/// `not_found`, `unavailable`, `timeout`.
public final class TaskClient: Sendable {
    /// How long a submission retries a publish JetStream did not acknowledge; shorter than the
    /// stream's duplicate window, so retries never store a task twice.
    public static let retryHorizon: Duration = .seconds(30)
    /// The duplicate window of `MESH_TASKS` this client relies on.
    public static let duplicateWindow: Duration = .seconds(120)
    /// Default and largest page of the history.
    public static let defaultLimit = 100
    public static let maxLimit = 1_000

    private let connection: NatsConnection
    private let jetStream: JetStream
    private let subjects: Subjects
    private let shardMap: ShardMap
    private let timeout: Duration
    private static let blocking = DispatchQueue(label: "mesh.task-client", attributes: .concurrent)

    /// - Parameter timeout: how long one request or publish waits for its answer.
    /// - Throws: ``MeshError`` `unavailable` when JetStream cannot be used on `connection`.
    public init(connection: NatsConnection, subjects: Subjects, shardMap: ShardMap, timeout: Duration = .seconds(5)) throws(MeshError) {
        self.connection = connection
        do { jetStream = try connection.jetStream() } catch { throw MeshError(.unavailable, "JetStream: \(error)") }
        self.subjects = subjects
        self.shardMap = shardMap
        self.timeout = timeout
    }

    // MARK: Submit

    /// Stores a task in stream `MESH_TASKS` for its agent's shard. The history first lists it
    /// with its outcome (or `running`) when it runs at once, or as `submitted` when it is
    /// still waiting a second later (the registry reads the waiting tasks from the stream).
    /// - Returns: the task id, and whether it was a repeat.
    /// - Throws: ``MeshError`` `invalid_argument`, `too_large`, `unavailable`, `timeout`.
    public func submit(_ submission: TaskSubmission) async throws(MeshError) -> SubmittedTask {
        let now = Date()
        var envelope = try Self.envelope(submission, now: now)
        if let key = submission.idempotencyKey {
            let claim = try await claimKey(agent: submission.agent, key: key, taskId: envelope.taskId)
            if let existing = claim {
                envelope.taskId = existing.taskId
                envelope.submittedAtUnixMs = Int64(TimeOrderedID.unixMilliseconds(of: existing.taskId) ?? UInt64(envelope.submittedAtUnixMs))
                // Past the duplicate window a publish would no longer be de-duplicated.
                if now.timeIntervalSince(existing.claimedAt) * 1000 > Double(Self.duplicateWindow.totalMilliseconds - 10_000) {
                    return SubmittedTask(taskId: existing.taskId, duplicate: true)
                }
            }
            let ack = try await publish(envelope)
            return SubmittedTask(taskId: envelope.taskId, duplicate: claim != nil || ack.duplicate)
        }
        let ack = try await publish(envelope)
        return SubmittedTask(taskId: envelope.taskId, duplicate: ack.duplicate)
    }

    /// ``submit(_:)`` with a completion instead of a task, for callers that submit many: a
    /// submission without an idempotency key is published at once and JetStream's ack reaches
    /// `completion` on the C client's thread, with no task. A submission with a key (which
    /// claims it in KV first) and a publish that must be retried continue in a task, with
    /// ``submit(_:)``'s guarantees (the retry publishes under the same task id, within the
    /// duplicate window). `completion` runs exactly once and must not block.
    public func submit(_ submission: TaskSubmission, completion: @escaping @Sendable (Result<SubmittedTask, MeshError>) -> Void) {
        if submission.idempotencyKey != nil {
            Task {
                do throws(MeshError) { completion(.success(try await submit(submission))) } catch { completion(.failure(error)) }
            }
            return
        }
        let envelope: TaskEnvelope
        do throws(MeshError) { envelope = try Self.envelope(submission, now: Date()) } catch { return completion(.failure(error)) }
        let retry: @Sendable () -> Void = { [self] in
            Task {
                do throws(MeshError) {
                    let ack = try await publish(envelope)
                    completion(.success(SubmittedTask(taskId: envelope.taskId, duplicate: ack.duplicate)))
                } catch {
                    completion(.failure(error))
                }
            }
        }
        let wire: Wire
        do throws(MeshError) { wire = try Self.wire(envelope, subjects: subjects, shardMap: shardMap) } catch { return completion(.failure(error)) }
        do {
            try jetStream.publishAsync(wire.subject, payload: wire.payload, headers: wire.headers, msgId: wire.msgID, ackTimeout: timeout) { result in
                switch result {
                case .success(let ack): completion(.success(SubmittedTask(taskId: envelope.taskId, duplicate: ack.duplicate)))
                case .failure(let error) where Self.isRetryable(error): retry()
                case .failure(let error): completion(.failure(Self.meshError(error, what: "storing the task")))
                }
            }
        } catch where Self.isRetryable(error) {
            retry()
        } catch {
            completion(.failure(Self.meshError(error, what: "storing the task")))
        }
    }

    /// Checks a submission and makes its envelope (a fresh time-ordered task id).
    private static func envelope(_ submission: TaskSubmission, now: Date) throws(MeshError) -> TaskEnvelope {
        try TaskRules.validateAction(submission.action)
        guard submission.payload.count <= TaskRules.maxPayloadBytes else {
            throw MeshError(.tooLarge, "a task payload is at most \(TaskRules.maxPayloadBytes) bytes, got \(submission.payload.count)")
        }
        let attempts = submission.maxAttempts ?? TaskRules.defaultMaxAttempts
        guard (1...TaskRules.maxAttemptsLimit).contains(attempts) else {
            throw MeshError(.invalidArgument, "max attempts must be in 1...\(TaskRules.maxAttemptsLimit), got \(attempts)")
        }
        if case .unrecognized(let value) = submission.priority { throw MeshError(.invalidArgument, "unknown priority \(value)") }
        if let key = submission.idempotencyKey { try TaskRules.validateIdempotencyKey(key) }
        return TaskEnvelope(
            taskId: TimeOrderedID.make(now: now), agentId: submission.agent.rawValue, action: submission.action, payload: submission.payload,
            priority: submission.priority, deadlineUnixMs: submission.deadline.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0,
            maxAttempts: UInt32(attempts), idempotencyKey: submission.idempotencyKey ?? "",
            submittedAtUnixMs: Int64(now.timeIntervalSince1970 * 1000))
    }

    /// What a task envelope is published as.
    private struct Wire {
        var subject: String
        var payload: [UInt8]
        var headers: NatsHeaders
        var msgID: String
    }

    private static func wire(_ envelope: TaskEnvelope, subjects: Subjects, shardMap: ShardMap) throws(MeshError) -> Wire {
        let agent = try AgentID(envelope.agentId)
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = TaskEnvelope.messageType.rawValue
        return Wire(
            subject: subjects.task(shard: shardMap.shard(of: agent), agent: agent), payload: envelope.serializedBytes(), headers: headers,
            msgID: envelope.rerun == 0 ? envelope.taskId : "\(envelope.taskId).rerun-\(envelope.rerun)")
    }

    /// A publish JetStream did not answer (or could not take yet): worth retrying.
    private static func isRetryable(_ error: NatsError) -> Bool {
        error.code == .timeout || error.code == .notConnected || error.code == .noResponders
    }

    /// Publishes a task envelope as it is (its id is the `Nats-Msg-Id`), retrying within
    /// ``retryHorizon``. Used by ``submit(_:)`` and the dead-letter re-run.
    private func publish(_ envelope: TaskEnvelope) async throws(MeshError) -> PubAck {
        let wire = try Self.wire(envelope, subjects: subjects, shardMap: shardMap)
        let started = ContinuousClock.now
        var delay: Duration = .milliseconds(50)
        while true {
            do {
                return try await jetStream.publish(wire.subject, payload: wire.payload, headers: wire.headers, msgId: wire.msgID, timeout: timeout)
            } catch {
                guard Self.isRetryable(error), ContinuousClock.now - started + delay < Self.retryHorizon else {
                    throw Self.meshError(error, what: "storing the task")
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// Publishes one task event (`<prefix>.evt.task.<state>`) and waits for the stream.
    private func publishEvent(_ record: TaskRecord, reason: String) async throws(MeshError) {
        let event = TaskEvents.message(record, reason: reason, subjects: subjects)
        do {
            _ = try await jetStream.publish(event.subject, payload: event.payload, headers: event.headers, msgId: event.id, timeout: timeout)
        } catch {
            throw Self.meshError(error, what: "recording the task event")
        }
    }

    struct Claim {
        var taskId: String
        var claimedAt: Date
    }

    /// Creates the idempotency entry for `taskId`, or returns the one that exists.
    private func claimKey(agent: AgentID, key: String, taskId: String) async throws(MeshError) -> Claim? {
        let entryKey = TaskRules.idempotencyEntry(agent: agent, key: key)
        let bucket = subjects.taskKeysBucket
        let js = jetStream
        let result: Result<Claim?, NatsError> = await Self.offPool { Self.claim(js, bucket: bucket, key: entryKey, taskId: taskId) }
        do { return try result.get() } catch { throw Self.meshError(error, what: "the idempotency key") }
    }

    /// Blocking: creates `key` → `taskId`, or reads the existing entry.
    private static func claim(_ js: JetStream, bucket: String, key: String, taskId: String) -> Result<Claim?, NatsError> {
        let kv: KeyValue
        do { kv = try js.keyValue(bucket) } catch { return .failure(error) }
        do {
            _ = try kv.create(key, Array(taskId.utf8))
            return .success(nil)
        } catch {
            guard error.code == .keyExists else { return .failure(error) }
        }
        do {
            guard let entry = try kv.get(key) else { return .failure(NatsError(code: .notFound, operation: "kvStore_Get", detail: "key vanished")) }
            return .success(Claim(taskId: String(decoding: entry.value, as: UTF8.self), claimedAt: entry.created ?? Date()))
        } catch {
            return .failure(error)
        }
    }

    // MARK: History

    /// One task from the history.
    /// - Throws: ``MeshError`` `not_found` (not recorded yet, or unknown), `unavailable`.
    public func get(_ taskId: String) async throws(MeshError) -> TaskRecord {
        try Self.validateTaskID(taskId)
        let page = try await query(TaskQueryRequest(taskId: taskId, limit: 1))
        guard let record = page.tasks.first else { throw MeshError(.notFound, "task \(taskId) is not in the history") }
        return record
    }

    /// A page of the history, newest first.
    /// - Parameters:
    ///   - agent: only this agent's tasks.
    ///   - state: only tasks in this state.
    ///   - from: submitted at or after; `to`: submitted before.
    ///   - cursor: the previous page's ``TaskPage/nextCursor``.
    ///   - limit: 1…1000.
    /// - Throws: ``MeshError`` `invalid_argument`, `unavailable` (no registry or no PostgreSQL).
    public func list(
        agent: AgentID? = nil, state: TaskState? = nil, from: Date? = nil, to: Date? = nil, cursor: String? = nil, limit: Int = defaultLimit
    ) async throws(MeshError) -> TaskPage {
        guard (1...Self.maxLimit).contains(limit) else { throw MeshError(.invalidArgument, "limit must be in 1...\(Self.maxLimit), got \(limit)") }
        let request = TaskQueryRequest(
            agentId: agent?.rawValue ?? "", state: state ?? .unspecified,
            fromUnixMs: from.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0, toUnixMs: to.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0,
            cursor: cursor ?? "", limit: UInt32(limit))
        return try await query(request)
    }

    private func query(_ request: TaskQueryRequest) async throws(MeshError) -> TaskPage {
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = TaskQueryRequest.messageType.rawValue
        let message: NatsMessage
        do {
            message = try await connection.request(subjects.taskQuery, payload: request.serializedBytes(), headers: headers, timeout: timeout)
        } catch {
            throw Self.meshError(error, what: "the task history")
        }
        let reply: TaskQueryReply
        do { reply = try TaskQueryReply(serializedBytes: message.payload) } catch {
            throw MeshError(.internalError, "the task history's reply is not a TaskQueryReply: \(error)")
        }
        if let error = reply.error { throw MeshError(reply: error, context: "the task history") }
        return TaskPage(tasks: reply.tasks, nextCursor: reply.nextCursor.isEmpty ? nil : reply.nextCursor)
    }

    // MARK: Cancel

    /// Cancels a task: a pending one is not run (it ends `cancelled` when its worker reaches
    /// it), a running one is stopped being waited for and ends `cancelled` at once. A task
    /// already over is not changed. The request is kept 24 h in KV `mesh_task_cancel`.
    /// - Throws: ``MeshError`` `invalid_argument`, `unavailable`.
    public func cancel(_ taskId: String, reason: String = "cancelled by an operator") async throws(MeshError) {
        try Self.validateTaskID(taskId)
        let (js, bucket) = (jetStream, subjects.taskCancelBucket)
        let text = String(reason.prefix(256))
        let result: Result<Void, NatsError> = await Self.offPool {
            do throws(NatsError) {
                _ = try js.keyValue(bucket).put(taskId, Array(text.utf8))
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        do { try result.get() } catch { throw Self.meshError(error, what: "cancelling the task") }
    }

    // MARK: Dead letters

    /// Up to `limit` dead-lettered tasks, oldest first.
    /// - Throws: ``MeshError`` `unavailable`.
    public func deadLetters(limit: Int = defaultLimit) async throws(MeshError) -> [DeadLetterEntry] {
        let (js, stream) = (jetStream, subjects.tasksDeadLetterStream)
        let bound = max(1, min(limit, Self.maxLimit))
        let result: Result<[DeadLetterEntry], NatsError> = await Self.offPool {
            do throws(NatsError) {
                let info = try js.streamInfo(stream)
                var entries: [DeadLetterEntry] = []
                guard info.state.messages > 0 else { return .success([]) }
                var sequence = info.state.firstSeq
                while sequence <= info.state.lastSeq && entries.count < bound {
                    if let stored = try js.storedMessage(stream: stream, sequence: sequence),
                        let letter = try? DeadLetter(serializedBytes: stored.payload)
                    {
                        entries.append(DeadLetterEntry(sequence: sequence, deadLetter: letter))
                    }
                    sequence += 1
                }
                return .success(entries)
            } catch {
                return .failure(error)
            }
        }
        do { return try result.get() } catch { throw Self.meshError(error, what: "the dead-letter queue") }
    }

    /// Runs a dead-lettered task again (same id, a fresh set of attempts, `rerun` + 1) and
    /// removes it from the dead-letter queue.
    /// - Throws: ``MeshError`` `not_found` when no dead letter has this task id.
    public func retryDeadLetter(_ taskId: String) async throws(MeshError) -> SubmittedTask {
        try Self.validateTaskID(taskId)
        let letters = try await deadLetters(limit: Self.maxLimit)
        guard let entry = letters.first(where: { $0.deadLetter.task.taskId == taskId }) else {
            throw MeshError(.notFound, "no dead-lettered task \(taskId)")
        }
        var envelope = entry.deadLetter.task
        envelope.rerun += 1
        envelope.attempt = 0
        let ack = try await publish(envelope)
        var record = TaskRecord(envelope: envelope, state: .submitted)
        record.updatedAtUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        try? await publishEvent(record, reason: "re-run from the dead-letter queue")
        let (js, stream, sequence) = (jetStream, subjects.tasksDeadLetterStream, entry.sequence)
        let removed: Result<Void, NatsError> = await Self.offPool {
            do throws(NatsError) {
                try js.deleteMessage(stream: stream, sequence: sequence)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = removed, error.code != .notFound { throw Self.meshError(error, what: "removing the dead letter") }
        return SubmittedTask(taskId: envelope.taskId, duplicate: ack.duplicate)
    }

    // MARK: Internals

    /// Task ids are UUIDs (time-ordered ones from ``submit(_:)``): 36 characters of hex and `-`.
    /// Checks that `id` is a task id (a lowercase UUID) before it is used in a request.
    /// - Throws: ``MeshError`` `invalid_argument`.
    public static func validateTaskID(_ id: String) throws(MeshError) {
        guard id.utf8.count == 36, id.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || $0 == 45 }) else {
            throw MeshError(.invalidArgument, "a task id is a lowercase UUID (36 characters)")
        }
    }

    private static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            blocking.async { continuation.resume(returning: body()) }
        }
    }

    static func meshError(_ error: NatsError, what: String) -> MeshError {
        switch error.code {
        case .noResponders: MeshError(.unavailable, "\(what): nothing is serving it (no responders)", retryAfter: .milliseconds(500))
        case .timeout: MeshError(.timeout, "\(what): no answer in time")
        case .notFound: MeshError(.unavailable, "\(what): the stream or bucket does not exist yet", retryAfter: .milliseconds(500))
        case .connectionClosed, .notConnected: MeshError(.unavailable, "\(what): not connected to NATS", retryAfter: .milliseconds(500))
        case .maxPayload: MeshError(.tooLarge, "\(what): larger than the server accepts")
        default: MeshError(.unavailable, "\(what): \(error.code)")
        }
    }
}
