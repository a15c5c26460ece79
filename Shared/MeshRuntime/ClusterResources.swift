public import Logging
public import MeshCore
public import Nats

/// The JetStream streams and KV buckets of a mesh, with the settings they are created
/// with — one place for all of them. Every service calls ``ensure(_:subjects:replicas:shardCount:logger:)``
/// at start; creating is idempotent (an existing stream or bucket is updated to these
/// settings or bound as it is), so any process may be the first one of a new cluster.
///
/// | name | kind | retention | purpose |
/// |---|---|---|---|
/// | `MESH_EVENTS` (`mesh.evt.>`) | stream | limits: 7 days, 1 GiB | events and the agent timeline |
/// | `MESH_SPECS` (`mesh.spec.>`) | stream | work queue, 1 day, 2 min de-dup window | published agent specs |
/// | `mesh_agents` | KV, history 5 | — | agent specs (desired state) |
/// | `mesh_status` | KV | — | agent run status and placement (owning worker) |
/// | `mesh_shards` | KV, history 5 | — | shard → node with epoch |
/// | `mesh_state` | KV, values ≤ 1 MiB | — | agent state checkpoints |
/// | `mesh_cluster` | KV | — | cluster settings (shard count) and operator drains (`drain.<node>`) |
/// | `mesh_leases` | KV, TTL | — | leader leases |
public struct ClusterResources: Sendable {
    /// Largest agent spec, status record or checkpoint stored.
    public static let maxValueBytes: Int32 = 1 << 20
    /// Time-to-live of a lease that is not renewed.
    public static let defaultLeaseTTL: Duration = .seconds(2)

    public let agents: KeyValue
    public let status: KeyValue
    public let shards: KeyValue
    public let state: KeyValue
    public let cluster: KeyValue
    public let leases: KeyValue
    /// The cluster's shard map (its shard count is fixed when the cluster is created).
    public let shardMap: ShardMap

    /// Creates or binds every stream and bucket and reads the cluster's shard count
    /// (writing `shardCount` when this process is the first).
    /// - Throws: `NatsError` when JetStream is unavailable; `MeshError` when the stored
    ///   shard count is corrupt.
    public static func ensure(
        _ js: JetStream, subjects: Subjects, replicas: Int, shardCount: Int, leaseTTL: Duration = defaultLeaseTTL, logger: Logger
    ) async throws -> ClusterResources {
        var events = StreamConfig(name: subjects.eventsStream, subjects: [subjects.eventsAll])
        events.retention = .limits
        events.maxAge = .seconds(7 * 24 * 3600)
        events.maxBytes = 1 << 30
        events.maxMsgSize = maxValueBytes
        events.replicas = replicas
        events.description = "Mesh events and agent timeline"
        _ = try js.addOrUpdateStream(events)

        var specs = StreamConfig(name: subjects.specsStream, subjects: [subjects.specsAll])
        specs.retention = .workQueue
        specs.maxAge = .seconds(24 * 3600)
        specs.duplicateWindow = .seconds(120)
        specs.maxMsgSize = maxValueBytes
        specs.replicas = replicas
        specs.description = "Published agent specs, applied by the registry"
        _ = try js.addOrUpdateStream(specs)

        let cluster = try bucket(js, replicas, subjects.clusterBucket, "Cluster settings")
        let resources = ClusterResources(
            agents: try bucket(js, replicas, subjects.agentsBucket, history: 5, "Agent specs"),
            status: try bucket(js, replicas, subjects.statusBucket, "Agent status and placement"),
            shards: try bucket(js, replicas, subjects.shardsBucket, history: 5, "Shard ownership with epochs"),
            state: try bucket(js, replicas, subjects.stateBucket, "Agent state checkpoints"),
            cluster: cluster,
            leases: try bucket(js, replicas, subjects.leasesBucket, ttl: leaseTTL, "Leader leases"),
            shardMap: try readShardCount(cluster, proposed: shardCount, logger: logger))
        return resources
    }

    private static func bucket(
        _ js: JetStream, _ replicas: Int, _ name: String, history: UInt8 = 1, ttl: Duration? = nil, _ description: String
    ) throws(NatsError) -> KeyValue {
        var config = KeyValueConfig(bucket: name)
        config.history = history
        config.ttl = ttl
        config.replicas = replicas
        config.maxValueSize = maxValueBytes
        config.description = description
        return try js.createKeyValue(config)
    }

    /// The key of the shard count in the cluster bucket.
    public static let shardCountKey = "shard-count"
    /// The key of an operator's drain of `node` in the cluster bucket (value: the drained
    /// node instance).
    public static func drainKey(node: NodeID) -> String { "drain.\(node.rawValue)" }
    /// The key in the state bucket where a shard's previous owner records that it has
    /// written its last checkpoints (value: the epoch it handed over to). The next owner waits
    /// for it before restoring the agents. Agent ids contain no dot, so it cannot clash.
    public static func handOverKey(shard: Int) -> String { "handover.\(shard)" }
    /// The node a ``drainKey(node:)`` names, `nil` for any other key.
    public static func drainedNode(key: String) -> NodeID? {
        key.hasPrefix("drain.") ? try? NodeID(String(key.dropFirst("drain.".count))) : nil
    }

    private static func readShardCount(_ cluster: KeyValue, proposed: Int, logger: Logger) throws -> ShardMap {
        do {
            _ = try cluster.create(shardCountKey, Array(String(proposed).utf8))
            logger.info("cluster created", metadata: ["mesh.shards": "\(proposed)"])
        } catch {
            // `keyExists`: an existing cluster, whose count wins.
            guard error.code == .keyExists else { throw error }
        }
        guard let entry = try cluster.get(shardCountKey), let count = Int(String(decoding: entry.value, as: UTF8.self)) else {
            throw MeshError(.internalError, "the cluster's shard count is missing or corrupt in \(cluster.bucket)/\(shardCountKey)")
        }
        if count != proposed {
            logger.notice("cluster keeps its shard count", metadata: ["mesh.shards": "\(count)", "mesh.shards.proposed": "\(proposed)"])
        }
        return try ShardMap(shardCount: count)
    }
}
