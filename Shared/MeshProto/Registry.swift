import CMeshProto

/// How a put treats an existing agent (`mesh.v1.PutMode`). Wire value 0 (unspecified)
/// reads as `.create`, which never overwrites; unknown values are kept as `.unrecognized`.
public enum PutMode: RawRepresentable, Sendable, Hashable {
    /// Fails with `already_exists` when the agent exists.
    case create
    /// Fails with `not_found` when the agent does not exist.
    case update
    /// Creates or updates.
    case upsert
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0, 1: self = .create
        case 2: self = .update
        case 3: self = .upsert
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .create: 1
        case .update: 2
        case .upsert: 3
        case .unrecognized(let value): value
        }
    }
}

extension PutMode: WireEnum {}

/// Creates or changes an agent's spec (`mesh.v1.PutAgentRequest`), sent on
/// `<prefix>.reg.<shard>.put`.
///
/// ```swift
/// let request = PutAgentRequest(spec: spec, mode: .update, expectedRevision: record.revision)
/// ```
public struct PutAgentRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// The desired spec (an absent spec on the wire reads as `AgentSpec()` with version 0).
    public var spec: AgentSpec
    public var mode: PutMode
    /// Compare-and-set token: when > 0 the write happens only at this revision.
    public var expectedRevision: UInt64

    public init(version: UInt32 = SchemaVersion.current, spec: AgentSpec = AgentSpec(), mode: PutMode = .create, expectedRevision: UInt64 = 0) {
        self.version = version
        self.spec = spec
        self.mode = mode
        self.expectedRevision = expectedRevision
    }
}

/// Reads one agent (`mesh.v1.GetAgentRequest`), sent on `<prefix>.reg.<shard>.get`.
public struct GetAgentRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var agentId: String

    public init(version: UInt32 = SchemaVersion.current, agentId: String = "") {
        self.version = version
        self.agentId = agentId
    }
}

/// Removes an agent (`mesh.v1.DeleteAgentRequest`), sent on `<prefix>.reg.<shard>.delete`.
public struct DeleteAgentRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var agentId: String
    /// When > 0 the delete happens only at this revision.
    public var expectedRevision: UInt64

    public init(version: UInt32 = SchemaVersion.current, agentId: String = "", expectedRevision: UInt64 = 0) {
        self.version = version
        self.agentId = agentId
        self.expectedRevision = expectedRevision
    }
}

/// One page of agents sorted by id (`mesh.v1.ListAgentsRequest`), sent on `<prefix>.reg.list`.
///
/// ```swift
/// let request = ListAgentsRequest(selector: "team=search,tier in (gold,silver)", limit: 500)
/// ```
public struct ListAgentsRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Kubernetes-style label selector; empty = every agent.
    public var selector: String
    /// Only agents placed on this node; empty = any.
    public var nodeId: String
    /// Only agents in this status; `.unspecified` = any.
    public var status: AgentStatus
    /// Only agents whose id sorts after this one (the previous page's `nextCursor`).
    public var cursor: String
    /// Page size; 0 = the registry's default (100), at most 1000.
    public var limit: UInt32

    public init(
        version: UInt32 = SchemaVersion.current, selector: String = "", nodeId: String = "", status: AgentStatus = .unspecified,
        cursor: String = "", limit: UInt32 = 0
    ) {
        self.version = version
        self.selector = selector
        self.nodeId = nodeId
        self.status = status
        self.cursor = cursor
        self.limit = limit
    }
}

/// The answer to get, put and delete (`mesh.v1.AgentReply`): a record or an error.
public struct AgentReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// The record (for delete, as it was removed); nil when `error` is set.
    public var record: AgentRecord?
    public var error: ErrorReply?

    public init(version: UInt32 = SchemaVersion.current, record: AgentRecord? = nil, error: ErrorReply? = nil) {
        self.version = version
        self.record = record
        self.error = error
    }
}

/// The answer to list (`mesh.v1.ListAgentsReply`): one page or an error.
public struct ListAgentsReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var records: [AgentRecord]
    /// Cursor of the next page; empty on the last page.
    public var nextCursor: String
    public var error: ErrorReply?

    public init(version: UInt32 = SchemaVersion.current, records: [AgentRecord] = [], nextCursor: String = "", error: ErrorReply? = nil) {
        self.version = version
        self.records = records
        self.nextCursor = nextCursor
        self.error = error
    }
}

// MARK: - Wire

extension PutAgentRequest: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.PutAgentRequest"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension PutAgentRequest: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__put_agent_request__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__PutAgentRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.spec = arena.message(spec)
        c.pointee.mode = mode.c()
        c.pointee.expected_revision = expectedRevision
    }

    init(c: UnsafePointer<Mesh__V1__PutAgentRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, spec: try WireRead.message(c.spec) ?? AgentSpec(version: 0), mode: PutMode(c: c.mode),
            expectedRevision: c.expected_revision)
    }
}

extension GetAgentRequest: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.GetAgentRequest"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension GetAgentRequest: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__get_agent_request__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__GetAgentRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.agent_id, agentId)
    }

    init(c: UnsafePointer<Mesh__V1__GetAgentRequest>) throws(WireError) {
        let c = c.pointee
        self.init(version: c.version, agentId: try WireRead.string(c.agent_id, "GetAgentRequest.agent_id"))
    }
}

extension DeleteAgentRequest: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.DeleteAgentRequest"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension DeleteAgentRequest: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__delete_agent_request__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__DeleteAgentRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.agent_id, agentId)
        c.pointee.expected_revision = expectedRevision
    }

    init(c: UnsafePointer<Mesh__V1__DeleteAgentRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, agentId: try WireRead.string(c.agent_id, "DeleteAgentRequest.agent_id"),
            expectedRevision: c.expected_revision)
    }
}

extension ListAgentsRequest: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.ListAgentsRequest"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension ListAgentsRequest: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__list_agents_request__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ListAgentsRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.selector, selector)
        arena.set(&c.pointee.node_id, nodeId)
        c.pointee.status = status.c()
        arena.set(&c.pointee.cursor, cursor)
        c.pointee.limit = limit
    }

    init(c: UnsafePointer<Mesh__V1__ListAgentsRequest>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, selector: try WireRead.string(c.selector, "ListAgentsRequest.selector"),
            nodeId: try WireRead.string(c.node_id, "ListAgentsRequest.node_id"), status: AgentStatus(c: c.status),
            cursor: try WireRead.string(c.cursor, "ListAgentsRequest.cursor"), limit: c.limit)
    }
}

extension AgentReply: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.AgentReply"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension AgentReply: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__agent_reply__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__AgentReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        if let record { c.pointee.record = arena.message(record) }
        if let error { c.pointee.error = arena.message(error) }
    }

    init(c: UnsafePointer<Mesh__V1__AgentReply>) throws(WireError) {
        let c = c.pointee
        self.init(version: c.version, record: try WireRead.message(c.record), error: try WireRead.message(c.error))
    }
}

extension ListAgentsReply: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.ListAgentsReply"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension ListAgentsReply: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__list_agents_reply__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ListAgentsReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.n_records, &c.pointee.records, records)
        arena.set(&c.pointee.next_cursor, nextCursor)
        if let error { c.pointee.error = arena.message(error) }
    }

    init(c: UnsafePointer<Mesh__V1__ListAgentsReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, records: try WireRead.messages(c.n_records, c.records),
            nextCursor: try WireRead.string(c.next_cursor, "ListAgentsReply.next_cursor"), error: try WireRead.message(c.error))
    }
}
