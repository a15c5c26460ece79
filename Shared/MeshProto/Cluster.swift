import CMeshProto

/// A worker's periodic liveness and load report (`mesh.v1.NodeHeartbeat`), published on
/// `mesh.node.<node>.hb`.
///
/// ```swift
/// let beat = NodeHeartbeat(nodeId: "node-a", instanceId: "a-7f3c", capacity: 100, load: 0.42,
///                          ownedShards: [.init(shard: 3, epoch: 9)], sequence: 17)
/// ```
public struct NodeHeartbeat: Sendable, Hashable {
    /// A shard the node serves, with the epoch it holds (`mesh.v1.NodeHeartbeat.OwnedShard`).
    public struct OwnedShard: Sendable, Hashable {
        /// Schema version (field 1); see `SchemaVersion`.
        public var version: UInt32
        public var shard: UInt32
        public var epoch: UInt64

        public init(version: UInt32 = SchemaVersion.current, shard: UInt32 = 0, epoch: UInt64 = 0) {
            self.version = version
            self.shard = shard
            self.epoch = epoch
        }
    }

    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var nodeId: String
    /// Process instance; changes on every restart of the node.
    public var instanceId: String
    /// Relative capacity weight for rendezvous assignment (0 = the mesh default).
    public var capacity: UInt32
    /// Utilisation: 0.0 idle, 1.0 at capacity; above 1.0 when overloaded.
    public var load: Double
    public var agentCount: UInt32
    public var ownedShards: [OwnedShard]
    public var timestampUnixMs: Int64
    /// Software version of the node, e.g. `1.4.0`.
    public var buildVersion: String
    /// The node accepts no new shards.
    public var draining: Bool
    /// Increases by one per heartbeat of this instance.
    public var sequence: UInt64

    public init(
        version: UInt32 = SchemaVersion.current, nodeId: String = "", instanceId: String = "", capacity: UInt32 = 0,
        load: Double = 0, agentCount: UInt32 = 0, ownedShards: [OwnedShard] = [], timestampUnixMs: Int64 = 0,
        buildVersion: String = "", draining: Bool = false, sequence: UInt64 = 0
    ) {
        self.version = version
        self.nodeId = nodeId
        self.instanceId = instanceId
        self.capacity = capacity
        self.load = load
        self.agentCount = agentCount
        self.ownedShards = ownedShards
        self.timestampUnixMs = timestampUnixMs
        self.buildVersion = buildVersion
        self.draining = draining
        self.sequence = sequence
    }
}

/// One change of a shard's owner (`mesh.v1.ShardAssignment`, KV `mesh_shards` value).
public struct ShardAssignment: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var shard: UInt32
    public var nodeId: String
    /// Monotonically increasing per shard (fencing token).
    public var epoch: UInt64
    public var assignedAtUnixMs: Int64
    /// Why: `node_joined`, `node_lost`, `drain`, `rebalance`, ...
    public var reason: String
    /// Owner before this assignment; empty if none.
    public var previousNodeId: String

    public init(
        version: UInt32 = SchemaVersion.current, shard: UInt32 = 0, nodeId: String = "", epoch: UInt64 = 0,
        assignedAtUnixMs: Int64 = 0, reason: String = "", previousNodeId: String = ""
    ) {
        self.version = version
        self.shard = shard
        self.nodeId = nodeId
        self.epoch = epoch
        self.assignedAtUnixMs = assignedAtUnixMs
        self.reason = reason
        self.previousNodeId = previousNodeId
    }
}

// MARK: - Wire

extension NodeHeartbeat: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.NodeHeartbeat"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension NodeHeartbeat: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__node_heartbeat__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__NodeHeartbeat>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.node_id, nodeId)
        arena.set(&c.pointee.instance_id, instanceId)
        c.pointee.capacity = capacity
        c.pointee.load = load
        c.pointee.agent_count = agentCount
        arena.set(&c.pointee.n_owned_shards, &c.pointee.owned_shards, ownedShards)
        c.pointee.timestamp_unix_ms = timestampUnixMs
        arena.set(&c.pointee.build_version, buildVersion)
        c.pointee.draining = draining ? 1 : 0
        c.pointee.sequence = sequence
    }

    init(c: UnsafePointer<Mesh__V1__NodeHeartbeat>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            nodeId: try WireRead.string(c.node_id, "NodeHeartbeat.node_id"),
            instanceId: try WireRead.string(c.instance_id, "NodeHeartbeat.instance_id"),
            capacity: c.capacity,
            load: c.load,
            agentCount: c.agent_count,
            ownedShards: try WireRead.messages(c.n_owned_shards, c.owned_shards),
            timestampUnixMs: c.timestamp_unix_ms,
            buildVersion: try WireRead.string(c.build_version, "NodeHeartbeat.build_version"),
            draining: c.draining != 0,
            sequence: c.sequence)
    }
}

extension NodeHeartbeat.OwnedShard: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.NodeHeartbeat.OwnedShard"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension NodeHeartbeat.OwnedShard: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        mesh__v1__node_heartbeat__owned_shard__descriptor_ref()
    }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__NodeHeartbeat__OwnedShard>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.shard = shard
        c.pointee.epoch = epoch
    }

    init(c: UnsafePointer<Mesh__V1__NodeHeartbeat__OwnedShard>) throws(WireError) {
        self.init(version: c.pointee.version, shard: c.pointee.shard, epoch: c.pointee.epoch)
    }
}

extension ShardAssignment: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.ShardAssignment"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension ShardAssignment: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__shard_assignment__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ShardAssignment>, _ arena: inout WireArena) {
        c.pointee.version = version
        c.pointee.shard = shard
        arena.set(&c.pointee.node_id, nodeId)
        c.pointee.epoch = epoch
        c.pointee.assigned_at_unix_ms = assignedAtUnixMs
        arena.set(&c.pointee.reason, reason)
        arena.set(&c.pointee.previous_node_id, previousNodeId)
    }

    init(c: UnsafePointer<Mesh__V1__ShardAssignment>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            shard: c.shard,
            nodeId: try WireRead.string(c.node_id, "ShardAssignment.node_id"),
            epoch: c.epoch,
            assignedAtUnixMs: c.assigned_at_unix_ms,
            reason: try WireRead.string(c.reason, "ShardAssignment.reason"),
            previousNodeId: try WireRead.string(c.previous_node_id, "ShardAssignment.previous_node_id"))
    }
}
