import CMeshProto

/// Outcome of an action (`mesh.v1.ActionStatus`); unknown values are kept as `.unrecognized`.
public enum ActionStatus: RawRepresentable, Sendable, Hashable {
    /// Not set by the writer (wire value 0).
    case unspecified
    /// `payload` holds the result.
    case ok
    /// `error` holds the reason.
    case error
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .unspecified
        case 1: self = .ok
        case 2: self = .error
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .unspecified: 0
        case .ok: 1
        case .error: 2
        case .unrecognized(let value): value
        }
    }
}

extension ActionStatus: WireEnum {}

/// A fast request/reply call to one agent (`mesh.v1.ActionRequest`), sent on
/// `mesh.agent.<shard>.<id>.act`. Trace context travels in NATS headers, not here.
///
/// ```swift
/// let request = ActionRequest(requestId: "r-1", agentId: "echo-1", action: "echo",
///                             payload: Array("hi".utf8), deadlineUnixMs: now + 2_000)
/// let bytes = request.serializedBytes()
/// ```
public struct ActionRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Caller-chosen id, echoed in the reply.
    public var requestId: String
    public var agentId: String
    /// Action name understood by the agent's kind.
    public var action: String
    public var payload: [UInt8]
    /// Absolute deadline (0 = none); the worker refuses work already past it.
    public var deadlineUnixMs: Int64
    /// Shard epoch the caller routed by (0 = unknown, not fenced); a worker with a newer
    /// epoch answers `stale_epoch`.
    public var shardEpoch: UInt64

    public init(
        version: UInt32 = SchemaVersion.current, requestId: String = "", agentId: String = "", action: String = "",
        payload: [UInt8] = [], deadlineUnixMs: Int64 = 0, shardEpoch: UInt64 = 0
    ) {
        self.version = version
        self.requestId = requestId
        self.agentId = agentId
        self.action = action
        self.payload = payload
        self.deadlineUnixMs = deadlineUnixMs
        self.shardEpoch = shardEpoch
    }
}

/// The answer to an `ActionRequest` (`mesh.v1.ActionReply`).
///
/// ```swift
/// let reply = ActionReply(requestId: request.requestId, status: .ok, payload: result, servedBy: "node-a")
/// ```
public struct ActionReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var requestId: String
    public var status: ActionStatus
    public var payload: [UInt8]
    /// Set when `status` is `.error`.
    public var error: ErrorReply?
    /// Node that served the action.
    public var servedBy: String
    /// Shard epoch under which it was served.
    public var shardEpoch: UInt64

    public init(
        version: UInt32 = SchemaVersion.current, requestId: String = "", status: ActionStatus = .unspecified,
        payload: [UInt8] = [], error: ErrorReply? = nil, servedBy: String = "", shardEpoch: UInt64 = 0
    ) {
        self.version = version
        self.requestId = requestId
        self.status = status
        self.payload = payload
        self.error = error
        self.servedBy = servedBy
        self.shardEpoch = shardEpoch
    }
}

// MARK: - Wire

extension ActionRequest: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.ActionRequest"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension ActionRequest: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__action_request__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ActionRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.request_id, requestId)
        arena.set(&c.pointee.agent_id, agentId)
        arena.set(&c.pointee.action, action)
        c.pointee.payload = arena.binary(payload)
        c.pointee.deadline_unix_ms = deadlineUnixMs
        c.pointee.shard_epoch = shardEpoch
    }

    init(c: UnsafePointer<Mesh__V1__ActionRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            requestId: try WireRead.string(c.request_id, "ActionRequest.request_id"),
            agentId: try WireRead.string(c.agent_id, "ActionRequest.agent_id"),
            action: try WireRead.string(c.action, "ActionRequest.action"),
            payload: WireRead.bytes(c.payload),
            deadlineUnixMs: c.deadline_unix_ms,
            shardEpoch: c.shard_epoch)
    }
}

extension ActionReply: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.ActionReply"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension ActionReply: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__action_reply__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ActionReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.request_id, requestId)
        c.pointee.status = status.c()
        c.pointee.payload = arena.binary(payload)
        if let error { c.pointee.error = arena.message(error) }
        arena.set(&c.pointee.served_by, servedBy)
        c.pointee.shard_epoch = shardEpoch
    }

    init(c: UnsafePointer<Mesh__V1__ActionReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            requestId: try WireRead.string(c.request_id, "ActionReply.request_id"),
            status: ActionStatus(c: c.status),
            payload: WireRead.bytes(c.payload),
            error: try WireRead.message(c.error),
            servedBy: try WireRead.string(c.served_by, "ActionReply.served_by"),
            shardEpoch: c.shard_epoch)
    }
}
