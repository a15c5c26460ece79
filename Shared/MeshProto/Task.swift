import CMeshProto

/// Scheduling priority of a task (`mesh.v1.TaskPriority`). Wire value 0 (unspecified)
/// reads as `.normal`; unknown values are kept as `.unrecognized`.
public enum TaskPriority: RawRepresentable, Sendable, Hashable {
    case high
    case normal
    case low
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 1: self = .high
        case 0, 2: self = .normal
        case 3: self = .low
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .high: 1
        case .normal: 2
        case .low: 3
        case .unrecognized(let value): value
        }
    }
}

/// Final state of a task (`mesh.v1.TaskStatus`); unknown values are kept as `.unrecognized`.
public enum TaskStatus: RawRepresentable, Sendable, Hashable {
    /// Not set by the writer (wire value 0).
    case unspecified
    case succeeded
    case failed
    /// Its deadline passed before it ran.
    case expired
    case cancelled
    /// Out of attempts: parked for an operator.
    case deadLettered
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .unspecified
        case 1: self = .succeeded
        case 2: self = .failed
        case 3: self = .expired
        case 4: self = .cancelled
        case 5: self = .deadLettered
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .unspecified: 0
        case .succeeded: 1
        case .failed: 2
        case .expired: 3
        case .cancelled: 4
        case .deadLettered: 5
        case .unrecognized(let value): value
        }
    }
}

extension TaskPriority: WireEnum {}
extension TaskStatus: WireEnum {}

/// One durable unit of work (`mesh.v1.TaskEnvelope`) on stream `MESH_TASKS`.
///
/// ```swift
/// let task = TaskEnvelope(taskId: "t-1", agentId: "work-1", action: "run", priority: .high,
///                         attempt: 1, maxAttempts: 5, idempotencyKey: "order-42")
/// ```
public struct TaskEnvelope: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var taskId: String
    public var agentId: String
    public var action: String
    public var payload: [UInt8]
    public var priority: TaskPriority
    /// Absolute deadline (0 = none); past it the task expires instead of running.
    public var deadlineUnixMs: Int64
    /// 1-based attempt number of this delivery.
    public var attempt: UInt32
    /// Attempts before the task is dead-lettered (0 = the mesh default).
    public var maxAttempts: UInt32
    /// Submissions with the same key (per agent) are one task.
    public var idempotencyKey: String
    public var submittedAtUnixMs: Int64
    /// Re-runs from the dead-letter queue before this one (0 = first run).
    public var rerun: UInt32

    public init(
        version: UInt32 = SchemaVersion.current, taskId: String = "", agentId: String = "", action: String = "",
        payload: [UInt8] = [], priority: TaskPriority = .normal, deadlineUnixMs: Int64 = 0, attempt: UInt32 = 0,
        maxAttempts: UInt32 = 0, idempotencyKey: String = "", submittedAtUnixMs: Int64 = 0, rerun: UInt32 = 0
    ) {
        self.version = version
        self.taskId = taskId
        self.agentId = agentId
        self.action = action
        self.payload = payload
        self.priority = priority
        self.deadlineUnixMs = deadlineUnixMs
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
        self.submittedAtUnixMs = submittedAtUnixMs
        self.rerun = rerun
    }
}

/// How a task ended (`mesh.v1.TaskResult`).
public struct TaskResult: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var taskId: String
    public var status: TaskStatus
    public var result: [UInt8]
    /// Set unless `status` is `.succeeded`.
    public var error: ErrorReply?
    /// Attempts made, including the last one.
    public var attempts: UInt32
    public var startedAtUnixMs: Int64
    public var finishedAtUnixMs: Int64
    /// Node that ran the last attempt.
    public var nodeId: String
    public var agentId: String

    public init(
        version: UInt32 = SchemaVersion.current, taskId: String = "", status: TaskStatus = .unspecified,
        result: [UInt8] = [], error: ErrorReply? = nil, attempts: UInt32 = 0, startedAtUnixMs: Int64 = 0,
        finishedAtUnixMs: Int64 = 0, nodeId: String = "", agentId: String = ""
    ) {
        self.version = version
        self.taskId = taskId
        self.status = status
        self.result = result
        self.error = error
        self.attempts = attempts
        self.startedAtUnixMs = startedAtUnixMs
        self.finishedAtUnixMs = finishedAtUnixMs
        self.nodeId = nodeId
        self.agentId = agentId
    }
}

// MARK: - Wire

extension TaskEnvelope: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.TaskEnvelope"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension TaskEnvelope: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__task_envelope__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__TaskEnvelope>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.task_id, taskId)
        arena.set(&c.pointee.agent_id, agentId)
        arena.set(&c.pointee.action, action)
        c.pointee.payload = arena.binary(payload)
        c.pointee.priority = priority.c()
        c.pointee.deadline_unix_ms = deadlineUnixMs
        c.pointee.attempt = attempt
        c.pointee.max_attempts = maxAttempts
        arena.set(&c.pointee.idempotency_key, idempotencyKey)
        c.pointee.submitted_at_unix_ms = submittedAtUnixMs
        c.pointee.rerun = rerun
    }

    init(c: UnsafePointer<Mesh__V1__TaskEnvelope>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            taskId: try WireRead.string(c.task_id, "TaskEnvelope.task_id"),
            agentId: try WireRead.string(c.agent_id, "TaskEnvelope.agent_id"),
            action: try WireRead.string(c.action, "TaskEnvelope.action"),
            payload: WireRead.bytes(c.payload),
            priority: TaskPriority(c: c.priority),
            deadlineUnixMs: c.deadline_unix_ms,
            attempt: c.attempt,
            maxAttempts: c.max_attempts,
            idempotencyKey: try WireRead.string(c.idempotency_key, "TaskEnvelope.idempotency_key"),
            submittedAtUnixMs: c.submitted_at_unix_ms,
            rerun: c.rerun)
    }
}

extension TaskResult: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.TaskResult"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension TaskResult: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__task_result__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__TaskResult>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.task_id, taskId)
        c.pointee.status = status.c()
        c.pointee.result = arena.binary(result)
        if let error { c.pointee.error = arena.message(error) }
        c.pointee.attempts = attempts
        c.pointee.started_at_unix_ms = startedAtUnixMs
        c.pointee.finished_at_unix_ms = finishedAtUnixMs
        arena.set(&c.pointee.node_id, nodeId)
        arena.set(&c.pointee.agent_id, agentId)
    }

    init(c: UnsafePointer<Mesh__V1__TaskResult>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            taskId: try WireRead.string(c.task_id, "TaskResult.task_id"),
            status: TaskStatus(c: c.status),
            result: WireRead.bytes(c.result),
            error: try WireRead.message(c.error),
            attempts: c.attempts,
            startedAtUnixMs: c.started_at_unix_ms,
            finishedAtUnixMs: c.finished_at_unix_ms,
            nodeId: try WireRead.string(c.node_id, "TaskResult.node_id"),
            agentId: try WireRead.string(c.agent_id, "TaskResult.agent_id"))
    }
}
