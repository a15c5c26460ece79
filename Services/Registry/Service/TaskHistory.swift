import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Metrics
import Nats
import NatsMicro
import ServiceLifecycle
import Store
import Synchronization

/// The task history in PostgreSQL: written from the task events (`<prefix>.evt.task.>`) by
/// the durable consumer `registry-tasks` shared by the registry instances, and read through
/// `<prefix>.tasks.query`.
///
/// Up to three batches are written at once (``PostgresMirror/Feed/writers``): each batch is
/// one upsert with its rows in task-id order, so concurrent batches cannot deadlock.
///
/// Writes are at-least-once and idempotent: one row per task id, upserted only when the
/// event's progress (``TaskEvents/progress(of:)``) is greater than the row's, so a
/// redelivered or late event never moves a task backwards, and the first terminal state of a
/// run is the one kept (a duplicated execution does not record a second result).
/// Migration 301 (tasks own versions 300–399).
enum TaskHistory {
    static let migrations: [Migration] = [
        Migration(
            version: 301, name: "tasks_history",
            sql: """
                CREATE TABLE tasks (
                    task_id text PRIMARY KEY,
                    agent_id text NOT NULL,
                    action text NOT NULL,
                    priority text NOT NULL,
                    state text NOT NULL,
                    progress bigint NOT NULL,
                    attempts integer NOT NULL DEFAULT 0,
                    max_attempts integer NOT NULL DEFAULT 0,
                    rerun integer NOT NULL DEFAULT 0,
                    node_id text,
                    error_code text,
                    submitted_at timestamptz,
                    started_at timestamptz,
                    finished_at timestamptz,
                    deadline timestamptz,
                    updated_at timestamptz NOT NULL,
                    record bytea NOT NULL
                );
                CREATE INDEX tasks_agent_idx ON tasks (agent_id, task_id);
                CREATE INDEX tasks_state_idx ON tasks (state, task_id);
                CREATE INDEX tasks_submitted_idx ON tasks (submitted_at);
                """),
    ]

    static let columns = [
        "task_id", "agent_id", "action", "priority", "state", "progress", "attempts", "max_attempts", "rerun", "node_id", "error_code",
        "submitted_at", "started_at", "finished_at", "deadline", "updated_at", "record",
    ]

    /// The feed of ``PostgresMirror`` that writes task events.
    static func feed(subjects: Subjects, logger: Logger) -> PostgresMirror.Feed {
        PostgresMirror.Feed(
            name: "tasks", stream: subjects.eventsStream, consumer: subjects.registryTasksConsumer, filter: subjects.taskEventsAll, writers: 3
        ) { messages, connection in
            let records = latest(messages.compactMap { message -> TaskRecord? in
                guard let event = try? Event(serializedBytes: message.payload), let record = TaskEvents.record(of: event) else {
                    logger.warning("undecodable task event not recorded", metadata: ["mesh.subject": "\(message.subject)"])
                    return nil
                }
                return record
            })
            guard !records.isEmpty else { return }
            // The batch is acknowledged after the commit: the commit must survive a server
            // crash even where the server runs with synchronous_commit off.
            try await connection.execute("SET LOCAL synchronous_commit TO on")
            let updates = columns.dropFirst().map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
            try await connection.batchInsert(
                table: "tasks", columns: columns, rows: records.map(row),
                onConflict: "(task_id) DO UPDATE SET \(updates) WHERE tasks.progress < EXCLUDED.progress")
        }
    }

    /// Per task, the record with the greatest progress; on a tie the first one (stream
    /// order), so the first terminal state wins within a batch as it does across batches.
    static func latest(_ records: [TaskRecord]) -> [TaskRecord] {
        var best: [String: TaskRecord] = [:]
        for record in records {
            if let current = best[record.taskId], TaskEvents.progress(of: current) >= TaskEvents.progress(of: record) { continue }
            best[record.taskId] = record
        }
        return best.keys.sorted().map { best[$0]! }
    }

    static func row(_ record: TaskRecord) -> [PostgresValue] {
        func time(_ ms: Int64) -> PostgresValue { ms > 0 ? .timestamp(Date(timeIntervalSince1970: Double(ms) / 1000)) : .null }
        let updated = record.updatedAtUnixMs > 0 ? record.updatedAtUnixMs : Int64(Date().timeIntervalSince1970 * 1000)
        return [
            .text(record.taskId), .text(record.agentId), .text(record.action), .text(priorityName(record.priority)), .text(record.state.name),
            .int(TaskEvents.progress(of: record)), .int(Int64(record.attempts)), .int(Int64(record.maxAttempts)), .int(Int64(record.rerun)),
            record.nodeId.isEmpty ? .null : .text(record.nodeId), record.error.map { .text($0.code) } ?? .null,
            time(record.submittedAtUnixMs), time(record.startedAtUnixMs), time(record.finishedAtUnixMs), time(record.deadlineUnixMs),
            time(updated), .bytes(record.serializedBytes()),
        ]
    }

    static func priorityName(_ priority: TaskPriority) -> String {
        switch priority {
        case .high: "high"
        case .normal: "normal"
        case .low: "low"
        case .unrecognized(let value): "unrecognized_\(value)"
        }
    }
}

/// Serves `<prefix>.tasks.query` (queue group `registry`) from the `tasks` table: one task by
/// id, or a page filtered by agent, state and submission time, newest first (cursor = the
/// last task id of the page; ids are time-ordered). At most ``maxConcurrent`` queries run at
/// once; more wait in a bounded buffer, beyond which the request gets `busy`.
struct TaskQueryServer: Service {
    static let maxConcurrent = 4
    static let maxRequestBytes = 4 * 1024
    static let defaultLimit = 100
    static let maxLimit = 1_000

    let context: ServiceContext
    let store: Store

    func run() async throws {
        let endpoint = context.micro.registerEndpoint(name: "tasks-query", subject: context.subjects.taskQuery, queueGroup: context.subjects.registryQueue)
        let subscription = try context.nats.subscribe(endpoint.subject, queue: endpoint.queueGroup, bufferSize: 1_024)
        let nats = context.nats
        let logger = context.logger
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                for await message in subscription {
                    if running >= Self.maxConcurrent {
                        await group.next()
                        running -= 1
                    }
                    running += 1
                    group.addTask {
                        let start = ContinuousClock.now
                        let reply = await answer(message)
                        var headers = NatsHeaders()
                        headers[MeshHeader.messageType] = TaskQueryReply.messageType.rawValue
                        do { try nats.respond(to: message, payload: reply.serializedBytes(), headers: headers) } catch {
                            logger.debug("task query reply failed", metadata: ["error": "\(error)"])
                        }
                        endpoint.record(processingTime: ContinuousClock.now - start, error: reply.error.map { "\($0.code): \($0.message)" })
                    }
                }
            }
        } onGracefulShutdown: {
            try? subscription.unsubscribe()
        }
    }

    func answer(_ message: NatsMessage) async -> TaskQueryReply {
        do {
            return try await query(message)
        } catch let error as MeshError {
            return TaskQueryReply(error: error.errorReply)
        } catch {
            return TaskQueryReply(error: MeshError(.internalError, "task query failed").errorReply)
        }
    }

    func query(_ message: NatsMessage) async throws -> TaskQueryReply {
        guard message.payload.count <= Self.maxRequestBytes else { throw MeshError(.tooLarge, "a task query is at most \(Self.maxRequestBytes) bytes") }
        if let type = message.headers[MeshHeader.messageType], type != TaskQueryRequest.messageType.rawValue {
            throw MeshError(.invalidArgument, "expected a \(TaskQueryRequest.messageType), got \(type)")
        }
        let request: TaskQueryRequest
        do { request = try TaskQueryRequest(serializedBytes: message.payload) } catch {
            throw MeshError(.invalidArgument, "malformed task query: \(error)")
        }
        let limit = request.limit == 0 ? Self.defaultLimit : Int(request.limit)
        guard (1...Self.maxLimit).contains(limit) else { throw MeshError(.invalidArgument, "limit must be in 1...\(Self.maxLimit)") }
        var conditions: [String] = []
        var parameters: [PostgresValue] = []
        func bind(_ value: PostgresValue) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        if !request.taskId.isEmpty {
            conditions.append("task_id = \(bind(.text(request.taskId)))")
        } else {
            if !request.agentId.isEmpty {
                let agent = try AgentID(request.agentId)
                conditions.append("agent_id = \(bind(.text(agent.rawValue)))")
            }
            switch request.state {
            case .unspecified: break
            case .unrecognized(let value): throw MeshError(.invalidArgument, "unknown task state \(value)")
            default: conditions.append("state = \(bind(.text(request.state.name)))")
            }
            if request.fromUnixMs > 0 {
                conditions.append("submitted_at >= \(bind(.timestamp(Date(timeIntervalSince1970: Double(request.fromUnixMs) / 1000))))")
            }
            if request.toUnixMs > 0 {
                conditions.append("submitted_at < \(bind(.timestamp(Date(timeIntervalSince1970: Double(request.toUnixMs) / 1000))))")
            }
            if !request.cursor.isEmpty { conditions.append("task_id < \(bind(.text(request.cursor)))") }
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT record FROM tasks \(filter) ORDER BY task_id DESC LIMIT \(bind(.int(Int64(limit + 1))))"
        let rows: [Row]
        do { rows = try await store.query(sql, parameters) } catch {
            throw MeshError(.unavailable, "the task history is unavailable (\(error.code))", retryAfter: .seconds(1))
        }
        var tasks: [TaskRecord] = []
        for row in rows.prefix(limit) {
            let bytes: [UInt8] = try row.decode("record")
            if let record = try? TaskRecord(serializedBytes: bytes) { tasks.append(record) }
        }
        let next = rows.count > limit ? tasks.last?.taskId ?? "" : ""
        return TaskQueryReply(tasks: tasks, nextCursor: next)
    }
}
