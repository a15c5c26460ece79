import CMeshProto

/// Where a task is in its life (`mesh.v1.TaskState`); unknown values are kept as `.unrecognized`.
///
/// Terminal states: ``succeeded``, ``failed``, ``expired``, ``cancelled``, ``deadLettered``.
public enum TaskState: RawRepresentable, Sendable, Hashable, CaseIterable {
    /// Not set by the writer (wire value 0).
    case unspecified
    /// Stored in stream `MESH_TASKS`, not started yet.
    case submitted
    /// An attempt is running on a worker.
    case running
    /// The last attempt failed; it is redelivered after a backoff.
    case retrying
    case succeeded
    /// Refused without running (malformed, too large): never retried.
    case failed
    /// Its deadline passed before it could run.
    case expired
    /// Cancelled by an operator.
    case cancelled
    /// Out of attempts: parked in `MESH_TASKS_DLQ` for an operator.
    case deadLettered
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public static let allCases: [TaskState] = [
        .submitted, .running, .retrying, .succeeded, .failed, .expired, .cancelled, .deadLettered,
    ]

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .unspecified
        case 1: self = .submitted
        case 2: self = .running
        case 3: self = .retrying
        case 4: self = .succeeded
        case 5: self = .failed
        case 6: self = .expired
        case 7: self = .cancelled
        case 8: self = .deadLettered
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .unspecified: 0
        case .submitted: 1
        case .running: 2
        case .retrying: 3
        case .succeeded: 4
        case .failed: 5
        case .expired: 6
        case .cancelled: 7
        case .deadLettered: 8
        case .unrecognized(let value): value
        }
    }

    /// Whether the task is over (nothing will run it again unless an operator re-runs it).
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .expired, .cancelled, .deadLettered: true
        default: false
        }
    }

    /// The state's name on the wire of events and in the history: `submitted`, `running`,
    /// `retrying`, `succeeded`, `failed`, `expired`, `cancelled`, `dead_lettered`.
    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .submitted: "submitted"
        case .running: "running"
        case .retrying: "retrying"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .expired: "expired"
        case .cancelled: "cancelled"
        case .deadLettered: "dead_lettered"
        case .unrecognized(let value): "unrecognized_\(value)"
        }
    }

    /// The state named `name` (as ``name`` spells it), or nil.
    public init?(name: String) {
        guard let state = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = state
    }
}

extension TaskState: WireEnum {}

/// A task as the history knows it (`mesh.v1.TaskRecord`): the payload of every task event
/// on `<prefix>.evt.task.<state>` and one row of the Postgres `tasks` table.
///
/// ```swift
/// let record = TaskRecord(taskId: id, agentId: "work-1", action: "run", state: .submitted)
/// ```
public struct TaskRecord: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var taskId: String
    public var agentId: String
    public var action: String
    public var priority: TaskPriority
    public var state: TaskState
    /// Deliveries so far (the 1-based attempt of the last one).
    public var attempts: UInt32
    public var maxAttempts: UInt32
    public var idempotencyKey: String
    public var submittedAtUnixMs: Int64
    public var startedAtUnixMs: Int64
    public var finishedAtUnixMs: Int64
    public var deadlineUnixMs: Int64
    /// The action's reply, when ``state`` is `.succeeded`.
    public var result: [UInt8]
    /// The last error (failed, expired, cancelled, dead-lettered, retrying).
    public var error: ErrorReply?
    /// Node of the last attempt.
    public var nodeId: String
    /// Re-runs from the dead-letter queue before this one.
    public var rerun: UInt32
    public var updatedAtUnixMs: Int64

    public init(
        version: UInt32 = SchemaVersion.current, taskId: String = "", agentId: String = "", action: String = "",
        priority: TaskPriority = .normal, state: TaskState = .unspecified, attempts: UInt32 = 0, maxAttempts: UInt32 = 0,
        idempotencyKey: String = "", submittedAtUnixMs: Int64 = 0, startedAtUnixMs: Int64 = 0, finishedAtUnixMs: Int64 = 0,
        deadlineUnixMs: Int64 = 0, result: [UInt8] = [], error: ErrorReply? = nil, nodeId: String = "", rerun: UInt32 = 0,
        updatedAtUnixMs: Int64 = 0
    ) {
        self.version = version
        self.taskId = taskId
        self.agentId = agentId
        self.action = action
        self.priority = priority
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
        self.submittedAtUnixMs = submittedAtUnixMs
        self.startedAtUnixMs = startedAtUnixMs
        self.finishedAtUnixMs = finishedAtUnixMs
        self.deadlineUnixMs = deadlineUnixMs
        self.result = result
        self.error = error
        self.nodeId = nodeId
        self.rerun = rerun
        self.updatedAtUnixMs = updatedAtUnixMs
    }

    /// The record of a task as submitted (no attempt yet).
    public init(envelope: TaskEnvelope, state: TaskState) {
        self.init(
            taskId: envelope.taskId, agentId: envelope.agentId, action: envelope.action, priority: envelope.priority,
            state: state, maxAttempts: envelope.maxAttempts, idempotencyKey: envelope.idempotencyKey,
            submittedAtUnixMs: envelope.submittedAtUnixMs, deadlineUnixMs: envelope.deadlineUnixMs, rerun: envelope.rerun)
    }
}

/// A task that ran out of attempts (`mesh.v1.DeadLetter`), on stream `MESH_TASKS_DLQ`.
public struct DeadLetter: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// The task as it was submitted.
    public var task: TaskEnvelope
    /// The last attempt's error.
    public var error: ErrorReply?
    public var attempts: UInt32
    public var deadLetteredAtUnixMs: Int64
    /// Node of the last attempt.
    public var nodeId: String

    public init(
        version: UInt32 = SchemaVersion.current, task: TaskEnvelope = TaskEnvelope(), error: ErrorReply? = nil, attempts: UInt32 = 0,
        deadLetteredAtUnixMs: Int64 = 0, nodeId: String = ""
    ) {
        self.version = version
        self.task = task
        self.error = error
        self.attempts = attempts
        self.deadLetteredAtUnixMs = deadLetteredAtUnixMs
        self.nodeId = nodeId
    }
}

/// A question to the task history (`mesh.v1.TaskQueryRequest`): one task by id, or a page
/// of tasks newest first; empty filters match everything.
public struct TaskQueryRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// When set, only this task (the other filters are ignored).
    public var taskId: String
    public var agentId: String
    /// `.unspecified` = any state.
    public var state: TaskState
    /// Submitted at or after this time (0 = open).
    public var fromUnixMs: Int64
    /// Submitted before this time (0 = open).
    public var toUnixMs: Int64
    /// The previous page's `nextCursor`.
    public var cursor: String
    /// 1…1000; 0 = 100.
    public var limit: UInt32

    public init(
        version: UInt32 = SchemaVersion.current, taskId: String = "", agentId: String = "", state: TaskState = .unspecified,
        fromUnixMs: Int64 = 0, toUnixMs: Int64 = 0, cursor: String = "", limit: UInt32 = 0
    ) {
        self.version = version
        self.taskId = taskId
        self.agentId = agentId
        self.state = state
        self.fromUnixMs = fromUnixMs
        self.toUnixMs = toUnixMs
        self.cursor = cursor
        self.limit = limit
    }
}

/// The task history's answer (`mesh.v1.TaskQueryReply`): one page or an error.
public struct TaskQueryReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var tasks: [TaskRecord]
    /// Cursor of the next page; empty on the last page.
    public var nextCursor: String
    public var error: ErrorReply?

    public init(version: UInt32 = SchemaVersion.current, tasks: [TaskRecord] = [], nextCursor: String = "", error: ErrorReply? = nil) {
        self.version = version
        self.tasks = tasks
        self.nextCursor = nextCursor
        self.error = error
    }
}

// MARK: - Wire

extension TaskRecord: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.TaskRecord"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension TaskRecord: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__task_record__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__TaskRecord>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.task_id, taskId)
        arena.set(&c.pointee.agent_id, agentId)
        arena.set(&c.pointee.action, action)
        c.pointee.priority = priority.c()
        c.pointee.state = state.c()
        c.pointee.attempts = attempts
        c.pointee.max_attempts = maxAttempts
        arena.set(&c.pointee.idempotency_key, idempotencyKey)
        c.pointee.submitted_at_unix_ms = submittedAtUnixMs
        c.pointee.started_at_unix_ms = startedAtUnixMs
        c.pointee.finished_at_unix_ms = finishedAtUnixMs
        c.pointee.deadline_unix_ms = deadlineUnixMs
        c.pointee.result = arena.binary(result)
        if let error { c.pointee.error = arena.message(error) }
        arena.set(&c.pointee.node_id, nodeId)
        c.pointee.rerun = rerun
        c.pointee.updated_at_unix_ms = updatedAtUnixMs
    }

    init(c: UnsafePointer<Mesh__V1__TaskRecord>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            taskId: try WireRead.string(c.task_id, "TaskRecord.task_id"),
            agentId: try WireRead.string(c.agent_id, "TaskRecord.agent_id"),
            action: try WireRead.string(c.action, "TaskRecord.action"),
            priority: TaskPriority(c: c.priority),
            state: TaskState(c: c.state),
            attempts: c.attempts,
            maxAttempts: c.max_attempts,
            idempotencyKey: try WireRead.string(c.idempotency_key, "TaskRecord.idempotency_key"),
            submittedAtUnixMs: c.submitted_at_unix_ms,
            startedAtUnixMs: c.started_at_unix_ms,
            finishedAtUnixMs: c.finished_at_unix_ms,
            deadlineUnixMs: c.deadline_unix_ms,
            result: WireRead.bytes(c.result),
            error: try WireRead.message(c.error),
            nodeId: try WireRead.string(c.node_id, "TaskRecord.node_id"),
            rerun: c.rerun,
            updatedAtUnixMs: c.updated_at_unix_ms)
    }
}

extension DeadLetter: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.DeadLetter"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension DeadLetter: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__dead_letter__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__DeadLetter>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.task = arena.message(task)
        if let error { c.pointee.error = arena.message(error) }
        c.pointee.attempts = attempts
        c.pointee.dead_lettered_at_unix_ms = deadLetteredAtUnixMs
        arena.set(&c.pointee.node_id, nodeId)
    }

    init(c: UnsafePointer<Mesh__V1__DeadLetter>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, task: try WireRead.message(c.task) ?? TaskEnvelope(version: 0), error: try WireRead.message(c.error),
            attempts: c.attempts, deadLetteredAtUnixMs: c.dead_lettered_at_unix_ms,
            nodeId: try WireRead.string(c.node_id, "DeadLetter.node_id"))
    }
}

extension TaskQueryRequest: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.TaskQueryRequest"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension TaskQueryRequest: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__task_query_request__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__TaskQueryRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.task_id, taskId)
        arena.set(&c.pointee.agent_id, agentId)
        c.pointee.state = state.c()
        c.pointee.from_unix_ms = fromUnixMs
        c.pointee.to_unix_ms = toUnixMs
        arena.set(&c.pointee.cursor, cursor)
        c.pointee.limit = limit
    }

    init(c: UnsafePointer<Mesh__V1__TaskQueryRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, taskId: try WireRead.string(c.task_id, "TaskQueryRequest.task_id"),
            agentId: try WireRead.string(c.agent_id, "TaskQueryRequest.agent_id"), state: TaskState(c: c.state),
            fromUnixMs: c.from_unix_ms, toUnixMs: c.to_unix_ms, cursor: try WireRead.string(c.cursor, "TaskQueryRequest.cursor"),
            limit: c.limit)
    }
}

extension TaskQueryReply: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.TaskQueryReply"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension TaskQueryReply: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__task_query_reply__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__TaskQueryReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.n_tasks, &c.pointee.tasks, tasks)
        arena.set(&c.pointee.next_cursor, nextCursor)
        if let error { c.pointee.error = arena.message(error) }
    }

    init(c: UnsafePointer<Mesh__V1__TaskQueryReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, tasks: try WireRead.messages(c.n_tasks, c.tasks),
            nextCursor: try WireRead.string(c.next_cursor, "TaskQueryReply.next_cursor"), error: try WireRead.message(c.error))
    }
}
