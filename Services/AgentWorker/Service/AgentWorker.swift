public import ArgumentParser
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
public struct WorkerOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("heartbeat-interval-ms"), help: "Heartbeat period in ms (env MESH_HEARTBEAT_INTERVAL_MS).")
    public var heartbeatIntervalMs: Int = MeshEnvironment.int("MESH_HEARTBEAT_INTERVAL_MS", 250)

    @Option(name: .customLong("capacity"), help: "Relative capacity weight for shard assignment (env MESH_CAPACITY).")
    public var capacity: Int = MeshEnvironment.int("MESH_CAPACITY", 100)

    public init() {}

    public func validate() throws {
        guard (10...60_000).contains(heartbeatIntervalMs) else { throw ValidationError("--heartbeat-interval-ms must be in 10...60000") }
        guard (1...1_000_000).contains(capacity) else { throw ValidationError("--capacity must be in 1...1000000") }
    }
}

/// `mesh-agent-worker`: joins the mesh and heartbeats on `<prefix>.node.<node>.hb`.
///
/// Today a worker announces itself with its capacity and its (empty) set of shards and
/// agents; owning shards and hosting agents arrive with the agent runtime.
public enum AgentWorker {
    public static let descriptor = ServiceDescriptor(
        name: .agentWorker, description: "Hosts agents of owned shards; runs actions and tasks")

    public static func services(context: ServiceContext, options: WorkerOptions) throws -> [any Service] {
        [heartbeat(context: context, options: options)]
    }

    /// The heartbeat: a `NodeHeartbeat` every `--heartbeat-interval-ms`.
    static func heartbeat(context: ServiceContext, options: WorkerOptions) -> PeriodicService {
        let subject = context.subjects.heartbeat(node: context.instanceID)
        let sequence = Atomic<UInt64>(0)
        let sent = Counter(label: "mesh_heartbeats_sent_total")
        return PeriodicService(
            every: .milliseconds(options.heartbeatIntervalMs),
            onError: { error in context.logger.debug("heartbeat not sent", metadata: ["error": "\(error)"]) },
            tick: {
                var beat = NodeHeartbeat()
                beat.nodeId = context.instanceID.rawValue
                beat.instanceId = context.instanceID.rawValue
                beat.capacity = UInt32(options.capacity)
                beat.load = 0
                beat.agentCount = 0
                beat.ownedShards = []
                beat.timestampUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                beat.buildVersion = MeshVersion.current
                beat.sequence = sequence.add(1, ordering: .relaxed).newValue
                var headers = NatsHeaders()
                headers[MeshHeader.messageType] = NodeHeartbeat.messageType.rawValue
                try context.nats.publish(subject, payload: beat.serializedBytes(), headers: headers)
                sent.increment()
            })
    }
}
