import MeshCore
import MeshProto

/// The agents a worker knows from the `mesh_agents` watch, by shard: the specs of the shards
/// it owns, and only the ids (with the revision last seen) of the others.
///
/// A worker may take any shard at any moment, so it follows every agent's id; but it keeps
/// the spec only of the agents it hosts. Keeping every spec, encoded, cost each worker about
/// 190 B per agent of the whole mesh — per agent, 190 B more with every worker added. When a
/// shard comes here, its specs are read from KV (``KeyValue/values(_:timeout:)``, a batched
/// direct get) and stored with ``store(_:spec:revision:)``; a released shard's specs are
/// dropped (``release(shard:)``).
///
/// Revisions order what the watch delivers against what such a read found: a change below
/// the revision already known (or at it, for a stored spec) is stale and ignored — the read
/// may be newer than watch entries still queued behind it.
struct SpecTable {
    /// An agent of an owned shard: its spec and the `mesh_agents` revision it came from.
    private struct Hosted {
        var spec: AgentSpec
        var revision: UInt64
    }

    /// What storing a spec did.
    enum Stored: Equatable {
        /// The agent was not known here with a spec.
        case new
        /// It replaced this spec.
        case replaced(AgentSpec)
        /// A revision at or below the known one: ignored.
        case stale
    }

    private let shardMap: ShardMap
    /// Specs of owned shards, by shard.
    private var hosted: [[AgentID: Hosted]]
    /// The last revision seen of each agent of the other shards, by shard.
    private var others: [[AgentID: UInt64]]

    init(shardMap: ShardMap) {
        self.shardMap = shardMap
        hosted = Array(repeating: [:], count: shardMap.shardCount)
        others = Array(repeating: [:], count: shardMap.shardCount)
    }

    /// The spec of an agent of an owned shard (nil for the others, and for unknown agents).
    subscript(agent: AgentID) -> AgentSpec? {
        hosted[shardMap.shard(of: agent)][agent]?.spec
    }

    /// Notes an agent of a shard not owned here (its spec is read when the shard comes).
    mutating func note(_ agent: AgentID, revision: UInt64) {
        let shard = shardMap.shard(of: agent)
        if let known = hosted[shard][agent]?.revision ?? others[shard][agent], known >= revision { return }
        hosted[shard][agent] = nil
        others[shard][agent] = revision
    }

    /// Keeps the spec of an agent of an owned shard, stored at `revision`.
    mutating func store(_ agent: AgentID, spec: AgentSpec, revision: UInt64) -> Stored {
        let shard = shardMap.shard(of: agent)
        if let known = hosted[shard][agent]?.revision, known >= revision { return .stale }
        // A noted revision is where the watch was; a read at the same revision is its spec.
        if let noted = others[shard][agent], noted > revision { return .stale }
        others[shard][agent] = nil
        return hosted[shard].updateValue(Hosted(spec: spec, revision: revision), forKey: agent).map { .replaced($0.spec) } ?? .new
    }

    /// Forgets an agent deleted at `revision`.
    /// - Returns: false when a later revision of it is known (the delete is stale).
    @discardableResult
    mutating func remove(_ agent: AgentID, revision: UInt64) -> Bool {
        let shard = shardMap.shard(of: agent)
        if let known = hosted[shard][agent]?.revision ?? others[shard][agent], known > revision { return false }
        hosted[shard][agent] = nil
        others[shard][agent] = nil
        return true
    }

    /// The agents of a shard this node takes, in id order, to read their specs for; they
    /// stay known by their revisions until ``store(_:spec:revision:)`` stores each.
    func agents(of shard: Int) -> [AgentID] {
        (Array(others[shard].keys) + Array(hosted[shard].keys)).sorted()
    }

    /// Drops the specs of a shard this node no longer owns, keeping its agents' revisions.
    mutating func release(shard: Int) {
        for (agent, entry) in hosted[shard] { others[shard][agent] = entry.revision }
        hosted[shard] = [:]
    }

    /// The spec a worker keeps of a `mesh_agents` record stored at `revision`: with its
    /// incarnation filled in (``AgentRecord/incarnation(storedAt:)``).
    static func spec(of record: AgentRecord, storedAt revision: UInt64) -> AgentSpec {
        var spec = record.spec
        spec.incarnation = record.incarnation(storedAt: revision)
        return spec
    }
}
