import CMeshProto

/// The supervisor leader's view of one worker node (`mesh.v1.NodeInfo`).
///
/// ```swift
/// let reply = try ListNodesReply(serializedBytes: bytes)
/// for node in reply.nodes where node.draining { print(node.nodeId, node.shards.count) }
/// ```
public struct NodeInfo: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var nodeId: String
    /// Process instance last heard (changes on every restart of the node).
    public var instanceId: String
    /// Heard within the liveness window.
    public var alive: Bool
    /// Gets no new shards and gives its shards away (stopping, or drained by an operator).
    public var draining: Bool
    /// An operator drained this instance (kept until undrained or the node restarts).
    public var drainRequested: Bool
    public var capacity: UInt32
    public var load: Double
    public var agentCount: UInt32
    /// Shards the shard table assigns to this node.
    public var shards: [UInt32]
    public var lastHeartbeatUnixMs: Int64
    public var buildVersion: String

    public init(
        version: UInt32 = SchemaVersion.current, nodeId: String = "", instanceId: String = "", alive: Bool = false,
        draining: Bool = false, drainRequested: Bool = false, capacity: UInt32 = 0, load: Double = 0, agentCount: UInt32 = 0,
        shards: [UInt32] = [], lastHeartbeatUnixMs: Int64 = 0, buildVersion: String = ""
    ) {
        self.version = version
        self.nodeId = nodeId
        self.instanceId = instanceId
        self.alive = alive
        self.draining = draining
        self.drainRequested = drainRequested
        self.capacity = capacity
        self.load = load
        self.agentCount = agentCount
        self.shards = shards
        self.lastHeartbeatUnixMs = lastHeartbeatUnixMs
        self.buildVersion = buildVersion
    }
}

/// Asks the supervisor leader (`<prefix>.sup.nodes`) for its node table (`mesh.v1.ListNodesRequest`).
public struct ListNodesRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32

    public init(version: UInt32 = SchemaVersion.current) { self.version = version }
}

/// The leader's node table, or an error (`mesh.v1.ListNodesReply`).
public struct ListNodesReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var nodes: [NodeInfo]
    /// The answering leader's instance id.
    public var leaderId: String
    /// The answering leader's lease epoch.
    public var leaderEpoch: UInt64
    public var error: ErrorReply?

    public init(
        version: UInt32 = SchemaVersion.current, nodes: [NodeInfo] = [], leaderId: String = "", leaderEpoch: UInt64 = 0,
        error: ErrorReply? = nil
    ) {
        self.version = version
        self.nodes = nodes
        self.leaderId = leaderId
        self.leaderEpoch = leaderEpoch
        self.error = error
    }
}

/// Drains a node (`<prefix>.sup.drain`): its shards move away and it gets no new ones; with
/// `undrain` it ends an earlier drain (`mesh.v1.DrainNodeRequest`).
public struct DrainNodeRequest: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    public var nodeId: String
    public var undrain: Bool

    public init(version: UInt32 = SchemaVersion.current, nodeId: String = "", undrain: Bool = false) {
        self.version = version
        self.nodeId = nodeId
        self.undrain = undrain
    }
}

/// The node after a drain request, or an error (`mesh.v1.DrainNodeReply`).
public struct DrainNodeReply: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// The node after the request was applied (its shards move in the next planning rounds).
    public var node: NodeInfo?
    /// Live nodes other than this one that can take its shards; 0 means the shards stay.
    public var candidates: UInt32
    public var error: ErrorReply?

    public init(version: UInt32 = SchemaVersion.current, node: NodeInfo? = nil, candidates: UInt32 = 0, error: ErrorReply? = nil) {
        self.version = version
        self.node = node
        self.candidates = candidates
        self.error = error
    }
}

// MARK: - Wire

extension NodeInfo: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.NodeInfo"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__node_info__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__NodeInfo>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.node_id, nodeId)
        arena.set(&c.pointee.instance_id, instanceId)
        c.pointee.alive = alive ? 1 : 0
        c.pointee.draining = draining ? 1 : 0
        c.pointee.drain_requested = drainRequested ? 1 : 0
        c.pointee.capacity = capacity
        c.pointee.load = load
        c.pointee.agent_count = agentCount
        arena.set(&c.pointee.n_shards, &c.pointee.shards, shards)
        c.pointee.last_heartbeat_unix_ms = lastHeartbeatUnixMs
        arena.set(&c.pointee.build_version, buildVersion)
    }

    init(c: UnsafePointer<Mesh__V1__NodeInfo>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            nodeId: try WireRead.string(c.node_id, "NodeInfo.node_id"),
            instanceId: try WireRead.string(c.instance_id, "NodeInfo.instance_id"),
            alive: c.alive != 0,
            draining: c.draining != 0,
            drainRequested: c.drain_requested != 0,
            capacity: c.capacity,
            load: c.load,
            agentCount: c.agent_count,
            shards: WireRead.scalars(c.n_shards, c.shards),
            lastHeartbeatUnixMs: c.last_heartbeat_unix_ms,
            buildVersion: try WireRead.string(c.build_version, "NodeInfo.build_version"))
    }
}

extension ListNodesRequest: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.ListNodesRequest"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__list_nodes_request__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ListNodesRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
    }

    init(c: UnsafePointer<Mesh__V1__ListNodesRequest>) throws(WireError) {
        self.init(version: c.pointee.version)
    }
}

extension ListNodesReply: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.ListNodesReply"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__list_nodes_reply__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__ListNodesReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.n_nodes, &c.pointee.nodes, nodes)
        arena.set(&c.pointee.leader_id, leaderId)
        c.pointee.leader_epoch = leaderEpoch
        if let error { c.pointee.error = arena.message(error) }
    }

    init(c: UnsafePointer<Mesh__V1__ListNodesReply>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version, nodes: try WireRead.messages(c.n_nodes, c.nodes),
            leaderId: try WireRead.string(c.leader_id, "ListNodesReply.leader_id"), leaderEpoch: c.leader_epoch,
            error: try WireRead.message(c.error))
    }
}

extension DrainNodeRequest: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.DrainNodeRequest"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__drain_node_request__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__DrainNodeRequest>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.node_id, nodeId)
        c.pointee.undrain = undrain ? 1 : 0
    }

    init(c: UnsafePointer<Mesh__V1__DrainNodeRequest>) throws(WireError) {
        let c = c.pointee
        self.init(version: c.version, nodeId: try WireRead.string(c.node_id, "DrainNodeRequest.node_id"), undrain: c.undrain != 0)
    }
}

extension DrainNodeReply: MeshMessage, CBridged {
    public static let messageType: MessageType = "mesh.v1.DrainNodeReply"
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__drain_node_reply__descriptor_ref() }

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__DrainNodeReply>, _ arena: inout WireArena) {
        c.pointee.version = version
        if let node { c.pointee.node = arena.message(node) }
        c.pointee.candidates = candidates
        if let error { c.pointee.error = arena.message(error) }
    }

    init(c: UnsafePointer<Mesh__V1__DrainNodeReply>) throws(WireError) {
        let c = c.pointee
        self.init(version: c.version, node: try WireRead.message(c.node), candidates: c.candidates, error: try WireRead.message(c.error))
    }
}
