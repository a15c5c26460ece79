/// Every NATS subject, stream, bucket and queue group name of the mesh — the only place
/// one is spelled. Each subject has a concrete form and, where a service subscribes to
/// many, a wildcard form beside it.
///
/// The prefix (default `mesh`) separates clusters or tenants sharing one NATS system.
/// Tokens passed in are already validated (``AgentID``, ``NodeID``, shard numbers, or the
/// service's own constant verbs), so no user text reaches a subject unchecked.
///
/// ```swift
/// let subjects = try Subjects(prefix: "mesh")
/// subjects.action(shard: 7, agent: id)      // "mesh.agent.7.<id>.act"
/// subjects.actionWildcard(shard: 7)          // "mesh.agent.7.*.act"
/// ```
public struct Subjects: Sendable, Hashable {
    /// The default prefix.
    public static let defaultPrefix = "mesh"

    /// The first token of every mesh subject.
    public let prefix: String

    /// - Throws: ``MeshError`` `invalid_id` when `prefix` is not a legal id token.
    public init(prefix: String = Subjects.defaultPrefix) throws(MeshError) {
        try Identifier.validate(prefix, kind: "subject prefix")
        self.prefix = prefix
    }

    // MARK: Agents

    /// `<prefix>.agent.<shard>.<id>.act` — an action, core request/reply, served by the shard's owner.
    public func action(shard: Int, agent: AgentID) -> String { "\(prefix).agent.\(shard).\(agent.rawValue).act" }
    /// `<prefix>.agent.<shard>.*.act` — what an owning worker subscribes per owned shard.
    public func actionWildcard(shard: Int) -> String { "\(prefix).agent.\(shard).*.act" }
    /// Queue group of a shard's action subscription: while a shard moves, its old and new
    /// owner may both be subscribed for a moment, and the group delivers each request to
    /// one of them only (the other would refuse it or run it a second time).
    public func actionQueue(shard: Int) -> String { "shard-\(shard)" }
    /// `<prefix>.agent.<shard>.<id>.ctl` — lifecycle control of one agent.
    public func control(shard: Int, agent: AgentID) -> String { "\(prefix).agent.\(shard).\(agent.rawValue).ctl" }
    /// `<prefix>.agent.<shard>.*.ctl`.
    public func controlWildcard(shard: Int) -> String { "\(prefix).agent.\(shard).*.ctl" }

    // MARK: Tasks

    /// `<prefix>.task.<shard>.<id>` — a durable task for an agent (stream ``tasksStream``).
    public func task(shard: Int, agent: AgentID) -> String { "\(prefix).task.\(shard).\(agent.rawValue)" }
    /// `<prefix>.task.<shard>.*` — the filter of a shard's task consumer.
    public func taskWildcard(shard: Int) -> String { "\(prefix).task.\(shard).*" }
    /// `<prefix>.task.>` — all task subjects (the stream's subjects).
    public var tasksAll: String { "\(prefix).task.>" }
    /// `<prefix>.dlq.task.<shard>.<id>` — a dead-lettered task (stream ``tasksDeadLetterStream``).
    public func deadLetter(shard: Int, agent: AgentID) -> String { "\(prefix).dlq.task.\(shard).\(agent.rawValue)" }
    /// `<prefix>.dlq.task.>` — the dead-letter stream's subjects.
    public var deadLettersAll: String { "\(prefix).dlq.task.>" }
    /// `<prefix>.tasks.query` — a question to the task history (served by the registry,
    /// queue group ``registryQueue``).
    public var taskQuery: String { "\(prefix).tasks.query" }
    /// `<prefix>.evt.task.>` — every task event (the history writer's filter).
    public var taskEventsAll: String { "\(prefix).evt.task.>" }
    /// Durable consumer of ``tasksStream`` for one shard, filtered to ``taskWildcard(shard:)``;
    /// the shard's owner pulls from it, and it stays when the shard moves.
    public func taskConsumer(shard: Int) -> String { "tasks-\(shard)" }

    // MARK: Specs (fire-and-forget intake)

    /// `<prefix>.spec.<id>` — an agent spec published to stream ``specsStream`` (with a
    /// `Nats-Msg-Id` for de-duplication) instead of a registry request.
    public func spec(agent: AgentID) -> String { "\(prefix).spec.\(agent.rawValue)" }
    /// `<prefix>.spec.>` — the specs stream's subjects.
    public var specsAll: String { "\(prefix).spec.>" }

    // MARK: Registry

    /// `<prefix>.reg.<shard>.<verb>` — a registry request about one agent.
    public func registry(shard: Int, verb: RegistryVerb) -> String { "\(prefix).reg.\(shard).\(verb.rawValue)" }
    /// `<prefix>.reg.<verb>` — a registry request across agents (list, query).
    public func registry(verb: RegistryVerb) -> String { "\(prefix).reg.\(verb.rawValue)" }
    /// `<prefix>.reg.>` — everything the registry serves.
    public var registryAll: String { "\(prefix).reg.>" }
    /// `<prefix>.reg.*.<verb>` — what a registry instance subscribes for a per-agent verb.
    public func registryWildcard(verb: RegistryVerb) -> String { "\(prefix).reg.*.\(verb.rawValue)" }

    // MARK: Supervisor and nodes

    /// `<prefix>.sup.<verb>` — a request to the supervisor leader.
    public func supervisor(verb: SupervisorVerb) -> String { "\(prefix).sup.\(verb.rawValue)" }
    /// `<prefix>.node.<node>.hb` — a worker's heartbeat.
    public func heartbeat(node: NodeID) -> String { "\(prefix).node.\(node.rawValue).hb" }
    /// `<prefix>.node.*.hb` — every worker's heartbeat.
    public var heartbeatWildcard: String { "\(prefix).node.*.hb" }
    /// `<prefix>.node.<node>.probe` — a worker's liveness probe: the worker answers it while
    /// its process is connected; once it is gone, nats-server answers "no responders".
    public func nodeProbe(node: NodeID) -> String { "\(prefix).node.\(node.rawValue).probe" }

    // MARK: Events and metrics

    /// `<prefix>.evt.<domain>.<event>` — an event (stream ``eventsStream``).
    public func event(domain: String, name: String) -> String { "\(prefix).evt.\(domain).\(name)" }
    /// `<prefix>.evt.>` — every event.
    public var eventsAll: String { "\(prefix).evt.>" }
    /// `<prefix>.bench.evt.<run>` — core-NATS events of a `meshctl bench events` run (outside
    /// `evt.>`, so no stream stores them and no service consumes them).
    public func benchEvents(_ run: UInt32) -> String { "\(prefix).bench.evt.\(run)" }
    /// `<prefix>.metrics.<service>.<instance>` — a metric snapshot.
    public func metrics(service: ServiceName, instance: NodeID) -> String {
        Self.metrics(prefix: prefix, service: service.rawValue, instance: instance.rawValue)
    }
    /// The same from names already checked as subject tokens (what a snapshot says it is).
    public static func metrics(prefix: String, service: String, instance: String) -> String {
        "\(prefix).metrics.\(service).\(instance)"
    }
    /// `<prefix>.metrics.>` — every snapshot.
    public var metricsAll: String { "\(prefix).metrics.>" }
    /// `<prefix>.metrics.*.*` — every snapshot (what the collector subscribes).
    public var metricsWildcard: String { "\(prefix).metrics.*.*" }
    /// `<prefix>.collector.series` — a metric's series over the last minutes (collector,
    /// queue group ``collectorQueue``).
    public var collectorSeries: String { "\(prefix).collector.series" }
    /// `<prefix>.collector.summary` — the dashboard summary (collector, queue group ``collectorQueue``).
    public var collectorSummary: String { "\(prefix).collector.summary" }
    /// `<prefix>.alerts.list` — active and recently resolved alerts (collector, queue group ``collectorQueue``).
    public var alertsList: String { "\(prefix).alerts.list" }
    /// `<prefix>.evt.alert.>` — every alert event (`<prefix>.evt.alert.<rule>`, see
    /// `EventKind.alert(rule:)`), fired or resolved.
    public var alertEventsAll: String { "\(prefix).evt.alert.>" }

    // MARK: JetStream streams, KV buckets, queue groups

    /// Stream of durable tasks (work-queue retention).
    public var tasksStream: String { "\(prefix.uppercased())_TASKS" }
    /// Stream of dead-lettered tasks (limits retention).
    public var tasksDeadLetterStream: String { "\(prefix.uppercased())_TASKS_DLQ" }
    /// KV bucket of idempotency keys: `<agent>.<hex(key)>` → task id.
    public var taskKeysBucket: String { "\(prefix)_task_keys" }
    /// KV bucket of cancellation requests: task id → reason.
    public var taskCancelBucket: String { "\(prefix)_task_cancel" }
    /// Stream of events (limits retention).
    public var eventsStream: String { "\(prefix.uppercased())_EVENTS" }
    /// Stream of published agent specs (work-queue retention, consumed by the registry).
    public var specsStream: String { "\(prefix.uppercased())_SPECS" }
    /// KV bucket of agent records (desired spec, status, placement).
    public var agentsBucket: String { "\(prefix)_agents" }
    /// KV bucket of shard ownership with epochs.
    public var shardsBucket: String { "\(prefix)_shards" }
    /// KV bucket of agent state checkpoints.
    public var stateBucket: String { "\(prefix)_state" }
    /// KV bucket of agent run status and placement, written by the owning worker.
    public var statusBucket: String { "\(prefix)_status" }
    /// KV bucket of cluster-wide settings (shard count, …).
    public var clusterBucket: String { "\(prefix)_cluster" }
    /// KV bucket of leases (the supervisor leader's), with a TTL.
    public var leasesBucket: String { "\(prefix)_leases" }
    /// Queue group of registry instances.
    public var registryQueue: String { "registry" }
    /// Durable consumer of ``specsStream`` shared by the registry instances (spec intake).
    public var registrySpecsConsumer: String { "registry" }
    /// Durable consumer of the `mesh_agents` KV stream that mirrors records into Postgres.
    public var registryAgentsMirrorConsumer: String { "registry-mirror-agents" }
    /// Durable consumer of the `mesh_status` KV stream that mirrors status into Postgres.
    public var registryStatusMirrorConsumer: String { "registry-mirror-status" }
    /// Durable consumer of ``eventsStream`` (agent events only) that writes the agent timeline.
    public var registryTimelineConsumer: String { "registry-timeline" }
    /// Durable consumer of ``eventsStream`` (task events only) that writes the task history.
    public var registryTasksConsumer: String { "registry-tasks" }
    /// `<prefix>.evt.agent.>` — the agent timeline's events (filter of ``registryTimelineConsumer``).
    public var agentEventsAll: String { "\(prefix).evt.agent.>" }

    // MARK: KV buckets as JetStream streams

    /// `KV_<bucket>` — the JetStream stream behind a KV bucket.
    public static func keyValueStream(bucket: String) -> String { "KV_\(bucket)" }
    /// `$KV.<bucket>.>` — every key's subject in a KV bucket's stream.
    public static func keyValueAll(bucket: String) -> String { "$KV.\(bucket).>" }
    /// `$KV.<bucket>.` — prefix of a key's subject, to cut the key out of it.
    public static func keyValuePrefix(bucket: String) -> String { "$KV.\(bucket)." }
    /// Queue group of metrics collectors.
    public var collectorQueue: String { "collector" }
}

/// Verbs of registry requests.
public enum RegistryVerb: String, Sendable, CaseIterable {
    case get, put, delete, list, query
}

/// Verbs of supervisor requests.
public enum SupervisorVerb: String, Sendable, CaseIterable {
    case assignments, drain, nodes
}

/// The services of the mesh, as they name themselves in discovery, logs and subjects.
public enum ServiceName: String, Sendable, CaseIterable, Codable {
    case registry = "mesh-registry"
    case supervisor = "mesh-supervisor"
    case agentWorker = "mesh-agent-worker"
    case gateway = "mesh-gateway"
    case metricsCollector = "mesh-metrics-collector"

    /// Short form for logger labels: `mesh.registry`, `mesh.agent-worker`, ….
    public var loggerLabel: String { "mesh." + rawValue.dropFirst("mesh-".count) }
}
