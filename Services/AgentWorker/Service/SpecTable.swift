import MeshCore
import MeshProto

/// Every agent's spec as a worker knows it from the `mesh_agents` watch, by shard.
///
/// A worker sees every agent's spec (it may take any shard at any moment, and then starts
/// its agents without reading KV), but hosts only its own shards' agents. So the specs of
/// shards it does not own stay as the watch delivered them — the record's encoded bytes,
/// a fraction of a decoded spec's memory, and no decoding for other nodes' agents — and
/// are decoded when their shard is taken (``take(shard:)``); a released shard's specs are
/// encoded again (``release(shard:)``).
struct SpecTable {
    /// An agent of a shard not owned here: its `mesh_agents` value and revision.
    private struct Encoded {
        var record: [UInt8]
        var revision: UInt64
    }

    private let shardMap: ShardMap
    /// Decoded specs, of owned shards, by shard.
    private var decoded: [[AgentID: AgentSpec]]
    /// Encoded records, of the other shards, by shard.
    private var encoded: [[AgentID: Encoded]]

    init(shardMap: ShardMap) {
        self.shardMap = shardMap
        decoded = Array(repeating: [:], count: shardMap.shardCount)
        encoded = Array(repeating: [:], count: shardMap.shardCount)
    }

    /// The spec of an agent of an owned shard (nil for the others, and for unknown agents).
    subscript(agent: AgentID) -> AgentSpec? {
        decoded[shardMap.shard(of: agent)][agent]
    }

    /// Keeps the record of an agent of a shard not owned here, undecoded.
    mutating func store(_ agent: AgentID, encoded record: [UInt8], revision: UInt64) {
        let shard = shardMap.shard(of: agent)
        decoded[shard][agent] = nil
        encoded[shard][agent] = Encoded(record: record, revision: revision)
    }

    /// Keeps the spec of an agent of an owned shard.
    /// - Returns: the spec it replaces.
    @discardableResult
    mutating func store(_ agent: AgentID, spec: AgentSpec) -> AgentSpec? {
        let shard = shardMap.shard(of: agent)
        encoded[shard][agent] = nil
        return decoded[shard].updateValue(spec, forKey: agent)
    }

    /// Forgets a deleted agent.
    mutating func remove(_ agent: AgentID) {
        let shard = shardMap.shard(of: agent)
        decoded[shard][agent] = nil
        encoded[shard][agent] = nil
    }

    /// Decodes the specs of a shard this node takes.
    /// - Returns: the shard's agents in id order, and those whose record cannot be decoded
    ///   (they are dropped).
    mutating func take(shard: Int) -> (agents: [AgentID], unreadable: [AgentID]) {
        var unreadable: [AgentID] = []
        for (agent, entry) in encoded[shard] {
            guard let record = try? AgentRecord(serializedBytes: entry.record) else {
                unreadable.append(agent)
                continue
            }
            decoded[shard][agent] = Self.spec(of: record, storedAt: entry.revision)
        }
        encoded[shard] = [:]
        return (decoded[shard].keys.sorted(), unreadable)
    }

    /// Encodes the specs of a shard this node no longer owns.
    mutating func release(shard: Int) {
        for (agent, spec) in decoded[shard] {
            // The incarnation is in the spec now (revision 0 is never needed to derive it).
            encoded[shard][agent] = Encoded(record: AgentRecord(spec: spec).serializedBytes(), revision: 0)
        }
        decoded[shard] = [:]
    }

    /// The spec a worker keeps of a `mesh_agents` record stored at `revision`: with its
    /// incarnation filled in (``AgentRecord/incarnation(storedAt:)``).
    static func spec(of record: AgentRecord, storedAt revision: UInt64) -> AgentSpec {
        var spec = record.spec
        spec.incarnation = record.incarnation(storedAt: revision)
        return spec
    }
}
