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
/// | `MESH_TASKS` (`mesh.task.>`) | stream | work queue, file, 7 days, 2 min de-dup window | durable tasks until acknowledged |
/// | `MESH_TASKS_DLQ` (`mesh.dlq.task.>`) | stream | limits: 14 days | tasks out of attempts |
/// | `mesh_task_keys` | KV, TTL 24 h | — | idempotency key → task id |
/// | `mesh_task_cancel` | KV, TTL 24 h | — | cancelled task ids |
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
    /// De-duplication window of `MESH_TASKS` (`Nats-Msg-Id`): at least the task client's
    /// retry horizon (`TaskClient.retryHorizon`, 30 s), so a retried or repeated submission
    /// within it is stored once.
    public static let taskDuplicateWindow: Duration = .seconds(120)
    /// How long an idempotency key maps to its task id, and a cancel request is kept.
    public static let taskKeyTTL: Duration = .seconds(24 * 3600)
    /// Largest message of `MESH_TASKS` (a task of the largest payload plus its envelope).
    public static let maxTaskMessageBytes: Int32 = Int32(TaskRules.maxPayloadBytes + 16 * 1024)

    public let agents: KeyValue
    public let status: KeyValue
    public let shards: KeyValue
    public let state: KeyValue
    public let cluster: KeyValue
    public let leases: KeyValue
    /// Idempotency key → task id (TTL ``taskKeyTTL``).
    public let taskKeys: KeyValue
    /// Cancelled task ids (TTL ``taskKeyTTL``).
    public let taskCancel: KeyValue
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

        var tasks = StreamConfig(name: subjects.tasksStream, subjects: [subjects.tasksAll])
        tasks.retention = .workQueue
        tasks.storage = .file
        tasks.maxAge = .seconds(7 * 24 * 3600)
        tasks.duplicateWindow = taskDuplicateWindow
        tasks.maxMsgSize = maxTaskMessageBytes
        tasks.replicas = replicas
        tasks.description = "Durable tasks, one consumer per shard"
        tasks.allowDirect = true  // the registry reads the waiting tasks (batched direct get)
        _ = try js.addOrUpdateStream(tasks)

        var deadLetters = StreamConfig(name: subjects.tasksDeadLetterStream, subjects: [subjects.deadLettersAll])
        deadLetters.retention = .limits
        deadLetters.maxAge = .seconds(14 * 24 * 3600)
        deadLetters.maxMsgSize = maxValueBytes
        deadLetters.replicas = replicas
        deadLetters.description = "Tasks out of attempts, for an operator"
        _ = try js.addOrUpdateStream(deadLetters)

        let cluster = try bucket(js, replicas, subjects.clusterBucket, "Cluster settings")
        let resources = ClusterResources(
            agents: try bucket(js, replicas, subjects.agentsBucket, history: 5, "Agent specs"),
            status: try bucket(js, replicas, subjects.statusBucket, "Agent status and placement"),
            shards: try bucket(js, replicas, subjects.shardsBucket, history: 5, "Shard ownership with epochs"),
            state: try bucket(js, replicas, subjects.stateBucket, "Agent state checkpoints"),
            cluster: cluster,
            leases: try bucket(js, replicas, subjects.leasesBucket, ttl: leaseTTL, "Leader leases"),
            taskKeys: try bucket(js, replicas, subjects.taskKeysBucket, ttl: taskKeyTTL, "Task idempotency keys"),
            taskCancel: try bucket(js, replicas, subjects.taskCancelBucket, ttl: taskKeyTTL, "Cancelled tasks"),
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
