import CMeshProto

/// One entry of the mesh timeline (`mesh.v1.Event`), published on
/// `mesh.evt.<domain>.<type>` into stream `MESH_EVENTS`, which assigns its sequence.
///
/// ```swift
/// let event = Event(id: "e-1", domain: "agent", type: "restarted", agentId: "counter-1",
///                   reason: "crashed: timeout", attributes: ["attempt": "2"])
/// ```
public struct Event: Sendable, Hashable {
    /// Schema version (field 1); see `SchemaVersion`.
    public var version: UInt32
    /// Unique id (de-duplication).
    public var id: String
    /// `agent`, `node`, `shard`, `task`, `alert`, ...
    public var domain: String
    /// `started`, `restarted`, `failed`, `placed`, ...
    public var type: String
    /// Empty when the event is not about one agent.
    public var agentId: String
    public var nodeId: String
    public var reason: String
    public var timestampUnixMs: Int64
    public var attributes: [String: String]
    public var payload: [UInt8]

    public init(
        version: UInt32 = SchemaVersion.current, id: String = "", domain: String = "", type: String = "",
        agentId: String = "", nodeId: String = "", reason: String = "", timestampUnixMs: Int64 = 0,
        attributes: [String: String] = [:], payload: [UInt8] = []
    ) {
        self.version = version
        self.id = id
        self.domain = domain
        self.type = type
        self.agentId = agentId
        self.nodeId = nodeId
        self.reason = reason
        self.timestampUnixMs = timestampUnixMs
        self.attributes = attributes
        self.payload = payload
    }
}

// MARK: - Wire

extension Event: MeshMessage {
    public static let messageType: MessageType = "mesh.v1.Event"

    /// Decodes a message; the corresponding C function is `protobuf_c_message_unpack`.
    public init(unsafeBytes bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) {
        self = try WireCodec.decode(bytes, limits: limits)
    }

    /// Encodes the message; the corresponding C function is `protobuf_c_message_pack`.
    public func serializedBytes() -> [UInt8] { WireCodec.encode(self) }
}

extension Event: CBridged {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__event__descriptor_ref() }

    func fill(_ c: UnsafeMutablePointer<Mesh__V1__Event>, _ arena: inout WireArena) {
        c.pointee.version = version
        arena.set(&c.pointee.id, id)
        arena.set(&c.pointee.domain, domain)
        arena.set(&c.pointee.type, type)
        arena.set(&c.pointee.agent_id, agentId)
        arena.set(&c.pointee.node_id, nodeId)
        arena.set(&c.pointee.reason, reason)
        c.pointee.timestamp_unix_ms = timestampUnixMs
        arena.set(&c.pointee.n_attributes, &c.pointee.attributes, attributes)
        c.pointee.payload = arena.binary(payload)
    }

    init(c: UnsafePointer<Mesh__V1__Event>) throws(WireError) {
        let c = c.pointee
        self.init(
            version: c.version,
            id: try WireRead.string(c.id, "Event.id"),
            domain: try WireRead.string(c.domain, "Event.domain"),
            type: try WireRead.string(c.type, "Event.type"),
            agentId: try WireRead.string(c.agent_id, "Event.agent_id"),
            nodeId: try WireRead.string(c.node_id, "Event.node_id"),
            reason: try WireRead.string(c.reason, "Event.reason"),
            timestampUnixMs: c.timestamp_unix_ms,
            attributes: try WireRead.map(c.n_attributes, c.attributes, "Event.attributes"),
            payload: WireRead.bytes(c.payload))
    }
}

extension Mesh__V1__Event__AttributesEntry: CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { mesh__v1__event__attributes_entry__descriptor_ref() }
}
