public import ArgumentParser
import AgentSDK
import Foundation
import Logging
import MeshCore
import MeshProto
import Metrics
public import MeshRuntime
import Nats
public import ServiceLifecycle
import Synchronization

/// Options of `mesh-agent-worker` beyond the common ones.
///
/// | flag | environment | default |
/// |---|---|---|
/// | `--heartbeat-interval-ms` | `MESH_HEARTBEAT_INTERVAL_MS` | `250` |
/// | `--capacity` | `MESH_CAPACITY` | `100` (relative weight for shard assignment) |
/// | `--checkpoint-interval-ms` | `MESH_CHECKPOINT_INTERVAL_MS` | `100` |
/// | `--exec-allow` | `MESH_EXEC_ALLOW` | empty: the `exec` kind may run nothing |
/// | `--task-ack-wait-ms` | `MESH_TASK_ACK_WAIT_MS` | `10000` |
/// | `--task-max-in-flight` | `MESH_TASK_MAX_IN_FLIGHT` | `256` per shard (the consumer's MaxAckPending) |
/// | `--task-backoff-base-ms` | `MESH_TASK_BACKOFF_BASE_MS` | `500` |
/// | `--task-backoff-max-ms` | `MESH_TASK_BACKOFF_MAX_MS` | `30000` |
/// | `--task-aging-ms` | `MESH_TASK_AGING_MS` | `2000` |
/// | `--task-running-event-ms` | `MESH_TASK_RUNNING_EVENT_MS` | `100` (a task running this long gets a `running` record; `0`: every task) |
/// | `--drain-timeout-ms` | `MESH_DRAIN_TIMEOUT_MS` | `5000` (how long a stopping node waits for its shards to move) |
public struct WorkerOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("heartbeat-interval-ms"), help: "Heartbeat period in ms (env MESH_HEARTBEAT_INTERVAL_MS).")
    public var heartbeatIntervalMs: Int = MeshEnvironment.int("MESH_HEARTBEAT_INTERVAL_MS", 250)

    @Option(name: .customLong("capacity"), help: "Relative capacity weight for shard assignment (env MESH_CAPACITY).")
    public var capacity: Int = MeshEnvironment.int("MESH_CAPACITY", 100)

    @Option(name: .customLong("checkpoint-interval-ms"), help: "How often changed agent state is checkpointed, in ms (env MESH_CHECKPOINT_INTERVAL_MS).")
    public var checkpointIntervalMs: Int = MeshEnvironment.int("MESH_CHECKPOINT_INTERVAL_MS", 100)

    @Option(name: .customLong("exec-allow"), help: "Commands the exec kind may run, comma-separated absolute paths (env MESH_EXEC_ALLOW).")
    public var execAllow: String = MeshEnvironment.string("MESH_EXEC_ALLOW") ?? ""

    @Option(name: .customLong("task-ack-wait-ms"), help: "Redelivery of an unacknowledged task after this many ms (env MESH_TASK_ACK_WAIT_MS).")
    public var taskAckWaitMs: Int = MeshEnvironment.int("MESH_TASK_ACK_WAIT_MS", 10_000)

    @Option(name: .customLong("task-max-in-flight"), help: "Tasks fetched and unacknowledged per shard, MaxAckPending (env MESH_TASK_MAX_IN_FLIGHT).")
    public var taskMaxInFlight: Int = MeshEnvironment.int("MESH_TASK_MAX_IN_FLIGHT", 256)

    @Option(name: .customLong("task-backoff-base-ms"), help: "Retry delay after a task's first failed attempt, doubling per attempt (env MESH_TASK_BACKOFF_BASE_MS).")
    public var taskBackoffBaseMs: Int = MeshEnvironment.int("MESH_TASK_BACKOFF_BASE_MS", 500)

    @Option(name: .customLong("task-backoff-max-ms"), help: "Longest retry delay of a task (env MESH_TASK_BACKOFF_MAX_MS).")
    public var taskBackoffMaxMs: Int = MeshEnvironment.int("MESH_TASK_BACKOFF_MAX_MS", 30_000)

    @Option(name: .customLong("task-aging-ms"), help: "A waiting task moves up one priority class per this many ms (env MESH_TASK_AGING_MS).")
    public var taskAgingMs: Int = MeshEnvironment.int("MESH_TASK_AGING_MS", 2_000)

    @Option(name: .customLong("task-running-event-ms"), help: "Record a task as running once it has run this many ms; 0: every task (env MESH_TASK_RUNNING_EVENT_MS).")
    public var taskRunningEventMs: Int = MeshEnvironment.int("MESH_TASK_RUNNING_EVENT_MS", 100)

    @Option(name: .customLong("drain-timeout-ms"), help: "On SIGTERM, how long to wait for the shards to move to other nodes, in ms (env MESH_DRAIN_TIMEOUT_MS).")
    public var drainTimeoutMs: Int = MeshEnvironment.int("MESH_DRAIN_TIMEOUT_MS", 5000)

    public init() {}

    var taskSettings: TaskSettings {
        TaskSettings(
            ackWait: .milliseconds(taskAckWaitMs), maxInFlight: taskMaxInFlight,
            retry: TaskRetryPolicy(base: .milliseconds(taskBackoffBaseMs), maximum: .milliseconds(taskBackoffMaxMs)),
            aging: .milliseconds(taskAgingMs), runningEventAfter: .milliseconds(taskRunningEventMs))
    }

    var execCommands: [String] { execAllow.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    var kindOptions: BuiltInKindOptions { BuiltInKindOptions(exec: ExecPolicy(allowedCommands: execCommands)) }

    public func validate() throws {
        guard (10...60_000).contains(heartbeatIntervalMs) else { throw ValidationError("--heartbeat-interval-ms must be in 10...60000") }
        guard (1...1_000_000).contains(capacity) else { throw ValidationError("--capacity must be in 1...1000000") }
        guard (10...60_000).contains(checkpointIntervalMs) else { throw ValidationError("--checkpoint-interval-ms must be in 10...60000") }
        guard (1_000...600_000).contains(taskAckWaitMs) else { throw ValidationError("--task-ack-wait-ms must be in 1000...600000") }
        guard (1...10_000).contains(taskMaxInFlight) else { throw ValidationError("--task-max-in-flight must be in 1...10000") }
        guard (1...600_000).contains(taskBackoffBaseMs) else { throw ValidationError("--task-backoff-base-ms must be in 1...600000") }
        guard (taskBackoffBaseMs...3_600_000).contains(taskBackoffMaxMs) else {
            throw ValidationError("--task-backoff-max-ms must be in --task-backoff-base-ms...3600000")
        }
        guard (10...600_000).contains(taskAgingMs) else { throw ValidationError("--task-aging-ms must be in 10...600000") }
        guard (0...600_000).contains(taskRunningEventMs) else { throw ValidationError("--task-running-event-ms must be in 0...600000") }
        guard (0...600_000).contains(drainTimeoutMs) else { throw ValidationError("--drain-timeout-ms must be in 0...600000") }
        for command in execCommands where !command.hasPrefix("/") {
            throw ValidationError("--exec-allow takes absolute paths, got \(command)")
        }
    }
}

/// `mesh-agent-worker`: hosts the agents of the shards KV `mesh_shards` assigns it (see
/// ``WorkerNode``) and heartbeats on `<prefix>.node.<node>.hb` with its capacity, load,
/// agent count and owned shards with their epochs.
public enum AgentWorker {
    /// The worker's subscriptions (one per owned shard) share cnats' two delivery threads, on
    /// which pure in-memory kinds answer their actions (see `AgentBehavior.answersInline`).
    /// Measured (release, `bench run actions`, 2 workers, alternating runs): 12 500–15 000
    /// actions/s at ≈ 72 % worker CPU, against 8 500–8 800/s at ≈ 95 % with a thread per
    /// shard and a task per action, 9 700–11 600/s with shared threads and a task per action,
    /// and 6 800–9 900/s answering inline on a thread per shard; p99 50–57 ms against
    /// 128–250 ms. One shared delivery thread gave 12 000–12 600/s.
    public static let descriptor = ServiceDescriptor(
        name: .agentWorker, description: "Hosts agents of owned shards; runs their actions", sharedDeliveryThreads: true)

    public static func services(context: ServiceContext, options: WorkerOptions) throws -> [any Service] {
        let node = WorkerNode(context: context, options: options)
        // Probe responder and heartbeat first: services stop in reverse order, so the node
        // drains while its heartbeats (saying `draining`) still go out.
        return [NodeProbeResponder(context: context), heartbeat(context: context, options: options, node: node), node]
    }

    /// The heartbeat: a `NodeHeartbeat` every `--heartbeat-interval-ms`.
    static func heartbeat(context: ServiceContext, options: WorkerOptions, node: WorkerNode) -> PeriodicService {
        let subject = context.subjects.heartbeat(node: context.instanceID)
        let sequence = Atomic<UInt64>(0)
        // A new instance id per process: the supervisor ends an operator's drain when the
        // drained node comes back as a new instance.
        let instance = "\(context.instanceID.rawValue)-\(String(UInt64.random(in: 1...UInt64.max), radix: 16))"

        let sent = Counter(label: "mesh_heartbeats_sent_total")
        return PeriodicService(
            every: .milliseconds(options.heartbeatIntervalMs),
            onError: { error in context.logger.debug("heartbeat not sent", metadata: ["error": "\(error)"]) },
            tick: {
                let (shards, agents) = node.ownership
                var beat = NodeHeartbeat()
                beat.nodeId = context.instanceID.rawValue
                beat.instanceId = instance
                beat.capacity = UInt32(options.capacity)
                beat.load = Double(agents) / Double(max(1, options.capacity * 100))
                beat.agentCount = UInt32(agents)
                beat.ownedShards = shards.map { NodeHeartbeat.OwnedShard(shard: UInt32($0.0), epoch: $0.1) }
                beat.timestampUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                beat.buildVersion = MeshVersion.current
                beat.sequence = sequence.add(1, ordering: .relaxed).newValue
                beat.draining = node.isDraining.load(ordering: .relaxed)
                var headers = NatsHeaders()
                headers[MeshHeader.messageType] = NodeHeartbeat.messageType.rawValue
                try context.nats.publish(subject, payload: beat.serializedBytes(), headers: headers)
                sent.increment()
                if context.nats.isConnected { node.heartbeatSent() }
            })
    }
}

/// Answers the supervisor's liveness probe on `<prefix>.node.<node>.probe` (an empty reply)
/// for as long as the process runs. Once the process is gone, its connection closes and
/// nats-server answers the probe with "no responders", which lets the supervisor declare
/// the node dead after 1.5 heartbeat intervals of silence instead of the full miss count.
struct NodeProbeResponder: Service {
    let context: ServiceContext

    func run() async throws {
        let connection = context.nats
        let subscription = try connection.subscribe(context.subjects.nodeProbe(node: context.instanceID), queue: nil) { message in
            try? connection.respond(to: message, payload: [])
        }
        defer { try? subscription.unsubscribe() }
        try? await gracefulShutdown()
    }
}
