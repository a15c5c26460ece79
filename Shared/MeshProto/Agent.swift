import CMeshProto

/// OTP restart type of an agent (`mesh.v1.RestartType`). Wire value 0 (unspecified) reads
/// as `.permanent`; values this version does not know are kept as `.unrecognized`.
public enum RestartType: RawRepresentable, Sendable, Hashable {
    /// Always restarted.
    case permanent
    /// Restarted only after an abnormal exit.
    case transient
    /// Never restarted.
    case temporary
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0, 1: self = .permanent
        case 2: self = .transient
        case 3: self = .temporary
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .permanent: 1
        case .transient: 2
        case .temporary: 3
        case .unrecognized(let value): value
        }
    }
}

/// OTP strategy of a supervision group (`mesh.v1.GroupStrategy`). Wire value 0
/// (unspecified) reads as `.oneForOne`; unknown values are kept as `.unrecognized`.
public enum GroupStrategy: RawRepresentable, Sendable, Hashable {
    /// Restart only the failed agent.
    case oneForOne
    /// Restart every agent of the group.
    case oneForAll
    /// Restart the failed agent and the agents started after it.
    case restForOne
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0, 1: self = .oneForOne
        case 2: self = .oneForAll
        case 3: self = .restForOne
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .oneForOne: 1
        case .oneForAll: 2
        case .restForOne: 3
        case .unrecognized(let value): value
        }
    }
}

/// Lifecycle state of an agent (`mesh.v1.AgentStatus`); unknown values are kept as
/// `.unrecognized`.
public enum AgentStatus: RawRepresentable, Sendable, Hashable {
    /// Not set by the writer (wire value 0).
    case unspecified
    /// Accepted, not yet placed or started.
    case pending
    case starting
    case running
    case stopping
    case stopped
    /// Gave up: restart intensity exceeded, or not restartable.
    case failed
    /// Waiting out a restart backoff.
    case restarting
    /// A wire value this version does not know.
    case unrecognized(Int32)

    public init(rawValue: Int32) {
        switch rawValue {
        case 0: self = .unspecified
        case 1: self = .pending
        case 2: self = .starting
        case 3: self = .running
        case 4: self = .stopping
        case 5: self = .stopped
        case 6: self = .failed
        case 7: self = .restarting
        default: self = .unrecognized(rawValue)
        }
    }

    public var rawValue: Int32 {
        switch self {
        case .unspecified: 0
        case .pending: 1
        case .starting: 2
        case .running: 3
        case .stopping: 4
        case .stopped: 5
        case .failed: 6
        case .restarting: 7
        case .unrecognized(let value): value
        }
    }
}

extension RestartType: WireEnum {}
extension GroupStrategy: WireEnum {}
extension AgentStatus: WireEnum {}

/// The desired definition of an agent, as published by an operator (`mesh.v1.AgentSpec`).
///
/// ```swift
/// var spec = AgentSpec(id: "counter-1", kind: "counter")
/// spec.labels["team"] = "search"
/// spec.restartType = .transient
/// ```
public struct AgentSpec: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Agent id, `[a-z0-9][a-z0-9_-]{0,62}` (checked by MeshCore, not here).
    public var id: String
    /// Behaviour kind: `echo`, `counter`, `kv`, `work`, `exec`, `http`, `fanout`, ...
    public var kind: String
    /// Spec generation, bumped by the registry on every change.
    public var generation: UInt64
    /// Kind-specific configuration, a JSON document.
    public var config: [UInt8]
    public var labels: [String: String]
    public var restartType: RestartType
    /// Supervision group; empty = the agent is its own group.
    public var group: String
    public var groupStrategy: GroupStrategy
    /// Restart intensity: more than `maxRestarts` within `periodSeconds` fails the group.
    /// 0 = the mesh default.
    public var maxRestarts: UInt32
    public var periodSeconds: UInt32
    /// Bounded mailbox size (0 = the mesh default); a full mailbox answers `busy`.
    public var mailboxCapacity: UInt32
    /// Per-action time limit in milliseconds (0 = the mesh default).
    public var actionTimeoutMs: UInt32
    /// One life of this id, from its create to its delete: the `mesh_agents` revision of
    /// the create (0 = unknown). Owned by the registry; see ``AgentRecord/incarnation(storedAt:)``.
    public var incarnation: UInt64

    public init(
        version: UInt32 = SchemaVersion.current, id: String = "", kind: String = "", generation: UInt64 = 0,
        config: [UInt8] = [], labels: [String: String] = [:], restartType: RestartType = .permanent,
        group: String = "", groupStrategy: GroupStrategy = .oneForOne, maxRestarts: UInt32 = 0,
        periodSeconds: UInt32 = 0, mailboxCapacity: UInt32 = 0, actionTimeoutMs: UInt32 = 0, incarnation: UInt64 = 0
    ) {
        self.version = version
        self.id = id
        self.kind = kind
        self.generation = generation
        self.config = config
        self.labels = labels
        self.restartType = restartType
        self.group = group
        self.groupStrategy = groupStrategy
        self.maxRestarts = maxRestarts
        self.periodSeconds = periodSeconds
        self.mailboxCapacity = mailboxCapacity
        self.actionTimeoutMs = actionTimeoutMs
        self.incarnation = incarnation
    }
}

/// Which worker hosts an agent, under which shard epoch (`mesh.v1.Placement`).
public struct Placement: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var nodeId: String
    public var shard: UInt32
    /// Fencing token of the shard's ownership when the agent was placed.
    public var shardEpoch: UInt64

    public init(version: UInt32 = SchemaVersion.current, nodeId: String = "", shard: UInt32 = 0, shardEpoch: UInt64 = 0) {
        self.version = version
        self.nodeId = nodeId
        self.shard = shard
        self.shardEpoch = shardEpoch
    }
}

/// The registry's full view of one agent (`mesh.v1.AgentRecord`, KV `mesh_agents` value).
///
/// ```swift
/// let record = AgentRecord(spec: spec, status: .running,
///                          placement: Placement(nodeId: "node-a", shard: 7, shardEpoch: 3))
/// ```
public struct AgentRecord: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// The desired spec (an absent spec on the wire reads as `AgentSpec()` with version 0).
    public var spec: AgentSpec
    public var status: AgentStatus
    /// `nil` while the agent is not placed.
    public var placement: Placement?
    /// KV revision the record was read at (compare-and-set token); 0 = not stored yet.
    public var revision: UInt64
    /// Restarts since the agent was last created or updated.
    public var restartCount: UInt32
    /// Set when the last run ended with an error.
    public var lastError: ErrorReply?
    public var createdAtUnixMs: Int64
    public var updatedAtUnixMs: Int64
    /// When the current (or last) run started.
    public var startedAtUnixMs: Int64
    /// When `status` last changed.
    public var statusChangedAtUnixMs: Int64

    public init(
        version: UInt32 = SchemaVersion.current, spec: AgentSpec = AgentSpec(), status: AgentStatus = .unspecified,
        placement: Placement? = nil, revision: UInt64 = 0, restartCount: UInt32 = 0, lastError: ErrorReply? = nil,
        createdAtUnixMs: Int64 = 0, updatedAtUnixMs: Int64 = 0, startedAtUnixMs: Int64 = 0,
        statusChangedAtUnixMs: Int64 = 0
    ) {
        self.version = version
        self.spec = spec
        self.status = status
        self.placement = placement
        self.revision = revision
        self.restartCount = restartCount
        self.lastError = lastError
        self.createdAtUnixMs = createdAtUnixMs
        self.updatedAtUnixMs = updatedAtUnixMs
        self.startedAtUnixMs = startedAtUnixMs
        self.statusChangedAtUnixMs = statusChangedAtUnixMs
    }
}

extension AgentRecord {
    /// The agent's incarnation when this record is the `mesh_agents` value at `revision`:
    /// the spec's own once the registry wrote it (at the first update), else the revision
    /// itself for a record at generation 1 (stored by its create), else 0 (unknown: a
    /// record from before incarnations).
    public func incarnation(storedAt revision: UInt64) -> UInt64 {
        if spec.incarnation != 0 { return spec.incarnation }
        return spec.generation == 1 ? revision : 0
    }
}

// MARK: - Wire

extension AgentSpec: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.AgentSpec"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension AgentSpec: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__agent_spec__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__AgentSpec>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.id, id)
        arena.set(&c.pointee.kind, kind)
        c.pointee.generation = generation
        c.pointee.config = arena.binary(config)
        arena.set(&c.pointee.n_labels, &c.pointee.labels, labels)
        c.pointee.restart_type = restartType.c()
        arena.set(&c.pointee.group, group)
        c.pointee.group_strategy = groupStrategy.c()
        c.pointee.max_restarts = maxRestarts
        c.pointee.period_seconds = periodSeconds
        c.pointee.mailbox_capacity = mailboxCapacity
        c.pointee.action_timeout_ms = actionTimeoutMs
        c.pointee.incarnation = incarnation
    }

    init(c: UnsafePointer<Mesh__V1__AgentSpec>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            id: try WireRead.string(c.id, "AgentSpec.id"),
            kind: try WireRead.string(c.kind, "AgentSpec.kind"),
            generation: c.generation,
            config: WireRead.bytes(c.config),
            labels: try WireRead.map(c.n_labels, c.labels, "AgentSpec.labels"),
            restartType: RestartType(c: c.restart_type),
            group: try WireRead.string(c.group, "AgentSpec.group"),
            groupStrategy: GroupStrategy(c: c.group_strategy),
            maxRestarts: c.max_restarts,
            periodSeconds: c.period_seconds,
            mailboxCapacity: c.mailbox_capacity,
            actionTimeoutMs: c.action_timeout_ms,
            incarnation: c.incarnation)
    }
}

extension Mesh__V1__AgentSpec__LabelsEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__agent_spec__labels_entry__descriptor_ref() }
}

extension Placement: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.Placement"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension Placement: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__placement__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__Placement>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.node_id, nodeId)
        c.pointee.shard = shard
        c.pointee.shard_epoch = shardEpoch
    }

    init(c: UnsafePointer<Mesh__V1__Placement>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, nodeId: try WireRead.string(c.node_id, "Placement.node_id"), shard: c.shard,
            shardEpoch: c.shard_epoch)
    }
}

extension AgentRecord: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.AgentRecord"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension AgentRecord: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__agent_record__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__AgentRecord>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.spec = arena.message(spec)
        c.pointee.status = status.c()
        if let placement { c.pointee.placement = arena.message(placement) }
        c.pointee.revision = revision
        c.pointee.restart_count = restartCount
        if let lastError { c.pointee.last_error = arena.message(lastError) }
        c.pointee.created_at_unix_ms = createdAtUnixMs
        c.pointee.updated_at_unix_ms = updatedAtUnixMs
        c.pointee.started_at_unix_ms = startedAtUnixMs
        c.pointee.status_changed_at_unix_ms = statusChangedAtUnixMs
    }

    init(c: UnsafePointer<Mesh__V1__AgentRecord>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            spec: try WireRead.message(c.spec) ?? AgentSpec(version: 0),
            status: AgentStatus(c: c.status),
            placement: try WireRead.message(c.placement),
            revision: c.revision,
            restartCount: c.restart_count,
            lastError: try WireRead.message(c.last_error),
            createdAtUnixMs: c.created_at_unix_ms,
            updatedAtUnixMs: c.updated_at_unix_ms,
            startedAtUnixMs: c.started_at_unix_ms,
            statusChangedAtUnixMs: c.status_changed_at_unix_ms)
    }
}
