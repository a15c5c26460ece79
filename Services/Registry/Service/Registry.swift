public import ArgumentParser
import Logging
import MeshClient
import MeshCore
import MeshProto
public import MeshRuntime
import Nats
public import ServiceLifecycle

/// `mesh-registry`: the agent directory.
///
/// - **System of record**: KV `mesh_agents` (key = agent id, value = `AgentRecord` with the
///   spec and created/updated times; its KV revision is the record's compare-and-set
///   revision). Run status, placement, restart count and last error live in KV
///   `mesh_status`, written by the owning worker; the registry only reads them and merges
///   them into every record it returns (no status yet → `pending`).
/// - **Serving** (``RegistryServer``): get/put/delete on `<prefix>.reg.<shard>.<verb>`, list
///   on `<prefix>.reg.list`, queue group `registry`, answered from an in-memory
///   ``AgentDirectory`` fed by KV watches; a new instance subscribes only after catching up.
/// - **Intake** (``SpecIntake``): specs published to `<prefix>.spec.<id>` are applied as upserts.
/// - **Events**: `agent.created`, `agent.updated`, `agent.deleted`, `agent.rejected`.
/// - **State sweep** (``StateSweep``): removes the checkpoints of deleted agents that their
///   worker could not remove (it was dead or frozen at the delete).
/// - **PostgreSQL** (``PostgresMirror``, ``RegistrySchema``): `agents` and `agent_events`,
///   written in batches by durable consumers off the request path.
/// - **Task history** (``TaskHistory``, ``TaskQueryServer``): `tasks`, written from the task
///   events, answered on `<prefix>.tasks.query`; ``WaitingTaskRecorder`` records the tasks
///   still waiting in `MESH_TASKS`.
public enum Registry {
    /// How the host describes and starts this service.
    public static let descriptor = ServiceDescriptor(
        name: .registry, description: "Agent directory: specs, status, placement, label and node indexes", usesPostgres: true,
        migrations: RegistrySchema.migrations + TaskHistory.migrations,
        // Four mirror feeds (the task history with three writers) and four task queries.
        postgresPoolSize: 10)

    /// The service's own long-running parts.
    public static func services(context: ServiceContext, options: RegistryOptions) async throws -> [any Service] {
        let js = try context.nats.jetStream()
        let resources = try await StartupRetry.run("cluster resources", logger: context.logger) {
            try await ClusterResources.ensure(
                js, subjects: context.subjects, replicas: context.options.jetStreamReplicas, shardCount: context.options.shardCount,
                logger: context.logger)
        }
        let rules = AgentSpecRules(extraKinds: try AgentKindName.parseList(options.extraKinds))
        let directory = try AgentDirectory(agents: resources.agents, status: resources.status, logger: context.logger)
        let events = EventPublisher(js: js, subjects: context.subjects, node: context.instanceID, logger: context.logger)
        // The writer's creates and deletes are acknowledged on a JetStream context of their
        // own; the buckets (and the status deletes issued from those acks) use `js`.
        let writer = RegistryWriter(agents: resources.agents, status: resources.status, jetStream: try context.nats.jetStream())
        let server = RegistryServer(
            context: context, directory: directory, writer: writer, rules: rules, events: events, writers: options.writerThreads)
        var services: [any Service] = [server, SpecIntake(context: context, server: server, rules: rules)]
        if options.stateSweepIntervalSeconds > 0 {
            services.append(
                StateSweep(
                    interval: .seconds(options.stateSweepIntervalSeconds), state: resources.state,
                    agentsStream: Subjects.keyValueStream(bucket: context.subjects.agentsBucket), directory: directory, logger: context.logger))
        }
        if let store = context.store {
            let subjects = context.subjects
            let logger = context.logger
            for feed in [
                MirrorFeeds.agents(subjects: subjects, shardMap: resources.shardMap, logger: logger),
                MirrorFeeds.status(subjects: subjects, shardMap: resources.shardMap, logger: logger),
                MirrorFeeds.timeline(subjects: subjects, logger: logger),
                TaskHistory.feed(subjects: subjects, logger: logger),
            ] {
                services.append(PostgresMirror(context: context, store: store, feed: feed))
            }
            services.append(TaskQueryServer(context: context, store: store))
            services.append(WaitingTaskRecorder(js: js, subjects: subjects, logger: logger).service())
        }
        return services
    }
}

/// The registry's own options, from flags or `MESH_*` environment variables.
///
/// | flag | environment | default |
/// |---|---|---|
/// | `--extra-kinds` | `MESH_EXTRA_KINDS` | empty: only the built-in kinds are accepted |
/// | `--writer-threads` | `MESH_REGISTRY_WRITERS` | `4`: delivery threads for put/delete (updates wait for KV round trips; creates and deletes do not) |
/// | `--state-sweep-interval-s` | `MESH_STATE_SWEEP_INTERVAL_S` | `600`: how often checkpoints of deleted agents are looked for (``StateSweep``); `0` turns it off |
public struct RegistryOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("extra-kinds"), help: "Custom agent kinds accepted besides the built-in ones, comma-separated (env MESH_EXTRA_KINDS).")
    public var extraKinds: String = MeshEnvironment.string("MESH_EXTRA_KINDS") ?? ""

    @Option(name: .customLong("writer-threads"), help: "Threads serving put/delete, 1...64 (env MESH_REGISTRY_WRITERS).")
    public var writerThreads: Int = MeshEnvironment.int("MESH_REGISTRY_WRITERS", 4)

    @Option(
        name: .customLong("state-sweep-interval-s"),
        help: "Seconds between sweeps removing checkpoints of deleted agents, 0 (off)...86400 (env MESH_STATE_SWEEP_INTERVAL_S).")
    public var stateSweepIntervalSeconds: Int = MeshEnvironment.int("MESH_STATE_SWEEP_INTERVAL_S", 600)

    public init() {}

    public func validate() throws {
        do { _ = try AgentKindName.parseList(extraKinds) } catch { throw ValidationError("--extra-kinds: \(error.message)") }
        guard (1...64).contains(writerThreads) else { throw ValidationError("--writer-threads must be in 1...64") }
        guard (0...86_400).contains(stateSweepIntervalSeconds) else { throw ValidationError("--state-sweep-interval-s must be in 0...86400") }
        for name in ["MESH_REGISTRY_WRITERS", "MESH_STATE_SWEEP_INTERVAL_S"] {
            if let raw = MeshEnvironment.string(name), Int(raw) == nil { throw ValidationError("\(name) must be an integer") }
        }
    }
}
