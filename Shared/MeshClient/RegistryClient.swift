public import MeshCore
public import MeshProto
public import Nats

/// A page of agents from ``RegistryClient/list(selector:node:status:cursor:limit:)``.
public struct AgentPage: Sendable, Hashable {
    /// The records, sorted by id.
    public var records: [AgentRecord]
    /// Cursor of the next page; nil on the last page.
    public var nextCursor: String?
}

/// The typed client of `mesh-registry`: create, update, upsert, get, delete and list agents
/// over NATS request/reply (`<prefix>.reg.<shard>.<verb>`, `<prefix>.reg.list`), and publish
/// specs fire-and-forget to stream `MESH_SPECS`.
///
/// ```swift
/// let registry = RegistryClient(connection: nats, subjects: subjects, shardMap: shardMap)
/// var record = try await registry.create(AgentSpec(id: "counter-1", kind: "counter"))
/// record.spec.labels["tier"] = "gold"
/// record = try await registry.update(record.spec, expectedRevision: record.revision)  // CAS
/// let page = try await registry.list(selector: "tier=gold", limit: 500)
/// ```
///
/// Every failure is a ``MeshError``: the registry's own code (`invalid_id`,
/// `invalid_argument`, `too_large`, `not_found`, `conflict`, `already_exists`, …),
/// `unavailable` when no registry instance answers, `timeout` when none answered in time.
public final class RegistryClient: Sendable {
    private let connection: NatsConnection
    private let subjects: Subjects
    private let shardMap: ShardMap
    private let timeout: Duration

    /// Default page size of ``list(selector:node:status:cursor:limit:)``.
    public static let defaultLimit = 100
    /// Largest page size the registry serves.
    public static let maxLimit = 1_000

    /// - Parameter timeout: how long one request waits for its reply.
    public init(connection: NatsConnection, subjects: Subjects, shardMap: ShardMap, timeout: Duration = .seconds(5)) {
        self.connection = connection
        self.subjects = subjects
        self.shardMap = shardMap
        self.timeout = timeout
    }

    /// Creates an agent.
    /// - Throws: ``MeshError`` `already_exists` when the id is taken, or a validation code.
    public func create(_ spec: AgentSpec) async throws(MeshError) -> AgentRecord {
        try await put(spec, mode: .create)
    }

    /// Changes an existing agent's spec (its generation goes up when the spec changes).
    /// - Parameter expectedRevision: when > 0, only if the record is still at this revision.
    /// - Throws: ``MeshError`` `not_found`, `conflict`, or a validation code.
    public func update(_ spec: AgentSpec, expectedRevision: UInt64 = 0) async throws(MeshError) -> AgentRecord {
        try await put(spec, mode: .update, expectedRevision: expectedRevision)
    }

    /// Creates or updates an agent.
    /// - Throws: ``MeshError`` `conflict` (with an expected revision), or a validation code.
    public func upsert(_ spec: AgentSpec, expectedRevision: UInt64 = 0) async throws(MeshError) -> AgentRecord {
        try await put(spec, mode: .upsert, expectedRevision: expectedRevision)
    }

    /// Sends a put request.
    public func put(_ spec: AgentSpec, mode: PutMode, expectedRevision: UInt64 = 0) async throws(MeshError) -> AgentRecord {
        let id = try AgentID(spec.id)
        let request = PutAgentRequest(spec: spec, mode: mode, expectedRevision: expectedRevision)
        let reply: AgentReply = try await call(subjects.registry(shard: shardMap.shard(of: id), verb: .put), request)
        return try Self.record(of: reply)
    }

    /// Reads one agent.
    /// - Throws: ``MeshError`` `not_found`.
    public func get(_ id: AgentID) async throws(MeshError) -> AgentRecord {
        let reply: AgentReply = try await call(
            subjects.registry(shard: shardMap.shard(of: id), verb: .get), GetAgentRequest(agentId: id.rawValue))
        return try Self.record(of: reply)
    }

    /// ``get(_:)`` without a task: `completion` runs once, on the thread that has the
    /// outcome (a NATS delivery thread, or the request timer's), and must not block.
    public func get(_ id: AgentID, completion: @escaping @Sendable (Result<AgentRecord, MeshError>) -> Void) {
        call(subjects.registry(shard: shardMap.shard(of: id), verb: .get), GetAgentRequest(agentId: id.rawValue)) {
            (result: Result<AgentReply, MeshError>) in
            completion(result.flatMap { reply in Result { () throws(MeshError) in try Self.record(of: reply) } })
        }
    }

    /// Deletes an agent (its worker stops it and removes its state).
    /// - Parameter expectedRevision: when > 0, only if the record is still at this revision.
    /// - Returns: the record as it was deleted.
    /// - Throws: ``MeshError`` `not_found`, `conflict`.
    @discardableResult
    public func delete(_ id: AgentID, expectedRevision: UInt64 = 0) async throws(MeshError) -> AgentRecord {
        let reply: AgentReply = try await call(
            subjects.registry(shard: shardMap.shard(of: id), verb: .delete),
            DeleteAgentRequest(agentId: id.rawValue, expectedRevision: expectedRevision))
        return try Self.record(of: reply)
    }

    /// One page of agents sorted by id.
    /// - Parameters:
    ///   - selector: Kubernetes-style label selector (see ``LabelSelector``); empty = all.
    ///   - node: only agents placed on this node.
    ///   - status: only agents in this status.
    ///   - cursor: the previous page's ``AgentPage/nextCursor``.
    ///   - limit: page size, 1…1000.
    /// - Throws: ``MeshError`` `invalid_argument` for a bad selector or limit.
    public func list(
        selector: String = "", node: String? = nil, status: AgentStatus? = nil, cursor: String? = nil, limit: Int = defaultLimit
    ) async throws(MeshError) -> AgentPage {
        guard (1...Self.maxLimit).contains(limit) else {
            throw MeshError(.invalidArgument, "limit must be in 1...\(Self.maxLimit), got \(limit)")
        }
        let request = ListAgentsRequest(
            selector: selector, nodeId: node ?? "", status: status ?? .unspecified, cursor: cursor ?? "", limit: UInt32(limit))
        let reply: ListAgentsReply = try await call(subjects.registry(verb: .list), request)
        if let error = reply.error { throw Self.meshError(error) }
        return AgentPage(records: reply.records, nextCursor: reply.nextCursor.isEmpty ? nil : reply.nextCursor)
    }

    /// Every agent matching the filters, page by page.
    /// - Parameter maxRecords: stop after this many (a bound on memory).
    public func listAll(
        selector: String = "", node: String? = nil, status: AgentStatus? = nil, pageSize: Int = maxLimit, maxRecords: Int = 1_000_000
    ) async throws(MeshError) -> [AgentRecord] {
        var records: [AgentRecord] = []
        var cursor: String?
        repeat {
            let page = try await list(selector: selector, node: node, status: status, cursor: cursor, limit: pageSize)
            records += page.records
            cursor = page.nextCursor
        } while cursor != nil && records.count < maxRecords
        return Array(records.prefix(maxRecords))
    }

    /// Publishes a spec to stream `MESH_SPECS` (`<prefix>.spec.<id>`) instead of asking the
    /// registry: the registry applies it as an upsert, once, even when published again
    /// with the same message id within the stream's 2-minute de-duplication window.
    /// - Parameter messageID: the `Nats-Msg-Id`; default: derived from the spec's bytes,
    ///   so publishing the same spec twice is stored once.
    /// - Returns: the stream's ack (`duplicate` when the id was seen already).
    /// - Throws: ``MeshError`` `invalid_id`; `unavailable` when the stream is not there.
    @discardableResult
    public func publishSpec(_ spec: AgentSpec, messageID: String? = nil) async throws(MeshError) -> PubAck {
        let id = try AgentID(spec.id)
        let payload = spec.serializedBytes()
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = AgentSpec.messageType.rawValue
        let msgID = messageID ?? "\(id.rawValue).\(String(Self.fnv1a64(payload), radix: 16))"
        do {
            return try await connection.jetStream().publish(
                subjects.spec(agent: id), payload: payload, headers: headers, msgId: msgID, timeout: timeout)
        } catch {
            throw Self.meshError(error, what: "publishing the spec")
        }
    }

    // MARK: Internals

    private func call<Request: MeshMessage, Reply: MeshMessage>(_ subject: String, _ request: Request) async throws(MeshError) -> Reply {
        try await ServiceRequest.call(connection, subject, request, timeout: timeout, service: Self.service)
    }

    private func call<Request: MeshMessage, Reply: MeshMessage>(
        _ subject: String, _ request: Request, completion: @escaping @Sendable (Result<Reply, MeshError>) -> Void
    ) {
        ServiceRequest.call(connection, subject, request, timeout: timeout, service: Self.service, completion: completion)
    }

    /// Who answers, in error messages.
    private static let service = "the registry"

    static func record(of reply: AgentReply) throws(MeshError) -> AgentRecord {
        if let error = reply.error { throw meshError(error) }
        guard let record = reply.record else { throw MeshError(.internalError, "the registry replied with neither a record nor an error") }
        return record
    }

    static func meshError(_ reply: ErrorReply) -> MeshError { MeshError(reply: reply, context: service) }

    static func meshError(_ error: NatsError, what: String) -> MeshError { ServiceRequest.meshError(error, what: what) }

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
