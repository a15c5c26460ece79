public import ArgumentParser
import Foundation
import Logging
import MeshCore
import MeshProto
public import MeshRuntime
import MeshSupervision
import Metrics
import Nats
import NatsMicro
public import ServiceLifecycle
import Synchronization

/// Options of `mesh-supervisor` beyond the common ones.
///
/// | flag | environment | default |
/// |---|---|---|
/// | `--heartbeat-interval-ms` | `MESH_HEARTBEAT_INTERVAL_MS` | `250` (what workers send) |
/// | `--heartbeat-misses` | `MESH_HEARTBEAT_MISSES` | `3` (a node is dead after this many) |
/// | `--join-hold-down-ms` | `MESH_JOIN_HOLD_DOWN_MS` | `1000` (a joining node's wait for shards) |
/// | `--lease-ttl-ms` | `MESH_LEASE_TTL_MS` | `2000` (leader lease) |
/// | `--tick-ms` | `MESH_SUPERVISOR_TICK_MS` | `50` (planning period) |
public struct SupervisorOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("heartbeat-interval-ms"), help: "Worker heartbeat period in ms (env MESH_HEARTBEAT_INTERVAL_MS).")
    public var heartbeatIntervalMs: Int = MeshEnvironment.int("MESH_HEARTBEAT_INTERVAL_MS", 250)

    @Option(name: .customLong("heartbeat-misses"), help: "Missed heartbeats before a node is dead (env MESH_HEARTBEAT_MISSES).")
    public var heartbeatMisses: Int = MeshEnvironment.int("MESH_HEARTBEAT_MISSES", 3)

    @Option(name: .customLong("join-hold-down-ms"), help: "How long a joining node must stay alive before it gets shards (env MESH_JOIN_HOLD_DOWN_MS).")
    public var joinHoldDownMs: Int = MeshEnvironment.int("MESH_JOIN_HOLD_DOWN_MS", 1000)

    @Option(name: .customLong("lease-ttl-ms"), help: "Leader lease time-to-live in ms (env MESH_LEASE_TTL_MS).")
    public var leaseTTLMs: Int = MeshEnvironment.int("MESH_LEASE_TTL_MS", 2000)

    @Option(name: .customLong("tick-ms"), help: "Planning period in ms (env MESH_SUPERVISOR_TICK_MS).")
    public var tickMs: Int = MeshEnvironment.int("MESH_SUPERVISOR_TICK_MS", 50)

    public init() {}

    public func validate() throws {
        guard (10...60_000).contains(heartbeatIntervalMs) else { throw ValidationError("--heartbeat-interval-ms must be in 10...60000") }
        guard (1...100).contains(heartbeatMisses) else { throw ValidationError("--heartbeat-misses must be in 1...100") }
        guard (0...600_000).contains(joinHoldDownMs) else { throw ValidationError("--join-hold-down-ms must be in 0...600000") }
        guard (500...60_000).contains(leaseTTLMs) else { throw ValidationError("--lease-ttl-ms must be in 500...60000") }
        guard (10...5_000).contains(tickMs) else { throw ValidationError("--tick-ms must be in 10...5000") }
    }
}

/// `mesh-supervisor`: the cluster brain. One instance leads (KV lease with a fencing
/// epoch); the others stand by with a warm view of the nodes and take over when the
/// lease expires.
///
/// The leader tracks node liveness from heartbeats on `<prefix>.node.*.hb`, assigns shards
/// to live workers by capacity-weighted rendezvous hashing (``ShardPlanner``), and writes
/// each change to KV `mesh_shards` (key = shard number, value = `ShardAssignment` with an
/// epoch that increases on every move) by compare-and-set, so a deposed leader can never
/// overwrite its successor. Workers own exactly the shards KV says they own.
public enum Supervisor {
    public static let descriptor = ServiceDescriptor(
        name: .supervisor, description: "Cluster brain: node liveness, shard assignment, supervision")

    public static func services(context: ServiceContext, options: SupervisorOptions) throws -> [any Service] {
        [try SupervisorLoop(context: context, options: options)]
    }
}

/// The supervisor's single loop: lease, liveness, planning and KV writes.
final class SupervisorLoop: Service, @unchecked Sendable {
    // @unchecked: `planner`, `revisions`, `lease` and `leading` are touched only by `run`'s
    // loop; heartbeats arrive on a NATS thread into the `inbox` mutex.
    private let context: ServiceContext
    private let options: SupervisorOptions
    private let configuration: ShardPlanner.Configuration
    private let inbox = Mutex<[(NodeID, Double, Bool, ContinuousClock.Instant)]>([])
    private let inboxLimit = 100_000
    private let moves = Counter(label: "mesh_shard_moves_total")
    private let leaderGauge = Gauge(label: "mesh_supervisor_leader")
    private let planLatency = Timer(label: "mesh_supervisor_plan_duration")

    init(context: ServiceContext, options: SupervisorOptions) throws {
        self.context = context
        self.options = options
        configuration = try ShardPlanner.Configuration(
            heartbeatInterval: .milliseconds(options.heartbeatIntervalMs), missesAllowed: options.heartbeatMisses,
            holdDown: .milliseconds(options.joinHoldDownMs))
    }

    func run() async throws {
        let logger = context.logger
        let js = try context.nats.jetStream()
        let resources = try await StartupRetry.run("cluster resources", logger: logger) {
            try await ClusterResources.ensure(
                js, subjects: context.subjects, replicas: context.options.jetStreamReplicas, shardCount: context.options.shardCount,
                leaseTTL: .milliseconds(options.leaseTTLMs), logger: logger)
        }
        let events = EventPublisher(js: js, subjects: context.subjects, node: context.instanceID, logger: logger)
        let lease = LeaderLease(kv: resources.leases, key: "supervisor", holder: context.instanceID, ttl: .milliseconds(options.leaseTTLMs))

        let heartbeatEndpoint = context.micro.registerEndpoint(name: "heartbeats", subject: context.subjects.heartbeatWildcard)
        let inboxLimit = self.inboxLimit
        let subjects = context.subjects
        let subscription = try context.nats.subscribe(context.subjects.heartbeatWildcard, queue: nil) { message in
            let received = ContinuousClock.now
            guard let beat = try? NodeHeartbeat(serializedBytes: message.payload), let node = try? NodeID(beat.nodeId),
                message.subject == subjects.heartbeat(node: node)
            else {
                heartbeatEndpoint.record(processingTime: ContinuousClock.now - received, error: "malformed heartbeat")
                return
            }
            self.inbox.withLock { queue in
                if queue.count < inboxLimit { queue.append((node, Double(beat.capacity), beat.draining, received)) }
            }
            heartbeatEndpoint.record(processingTime: ContinuousClock.now - received, error: nil)
        }
        defer { try? subscription.unsubscribe() }

        var planner = try ShardPlanner(shardCount: resources.shardMap.shardCount, configuration: configuration)
        var revisions = [UInt64](repeating: 0, count: resources.shardMap.shardCount)
        var leading = false
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = clock.now
            for (node, capacity, draining, at) in inbox.withLock({ queue in defer { queue.removeAll(keepingCapacity: true) }; return queue }) {
                let wasKnownAlive = planner.nodes[node]?.isAlive ?? false
                planner.heartbeat(node, capacity: capacity, draining: draining, at: at)
                if leading && !wasKnownAlive { events.publish(.nodeJoined, node: node, reason: "heartbeats started") }
            }
            switch lease.tick(now: now) {
            case .leader(let epoch):
                if !leading {
                    do {
                        (planner, revisions) = try restore(from: resources.shards, current: planner, now: now)
                        leading = true
                        leaderGauge.record(1)
                        logger.info("leading", metadata: ["mesh.lease.epoch": "\(epoch)"])
                        events.publish(.supervisorElected, reason: "acquired the leader lease", attributes: ["epoch": "\(epoch)"])
                    } catch {
                        logger.warning("cannot read shard assignments; not leading yet", metadata: ["error": "\(error)"])
                    }
                }
                if leading {
                    let started = clock.now
                    let deadBefore = Set(planner.nodes.filter { $0.value.isAlive }.keys)
                    let planned = planner.plan(now: now)
                    for node in deadBefore where planner.nodes[node]?.isAlive == false {
                        events.publish(.nodeLost, node: node, reason: "no heartbeat for \(configuration.deadAfter)")
                    }
                    if !planned.isEmpty, !write(planned, to: resources.shards, revisions: &revisions, events: events) {
                        // Someone else wrote: we are no longer the leader. Re-read on the next lead.
                        leading = false
                        leaderGauge.record(0)
                        lease.release()
                    }
                    planLatency.recordNanoseconds((clock.now - started).totalNanoseconds)
                }
            case .standby(let holder):
                if leading {
                    logger.warning("lost the leader lease", metadata: ["mesh.lease.holder": "\(holder ?? "-")"])
                    leading = false
                    leaderGauge.record(0)
                }
                _ = planner.expire(now: now)  // keep the node table warm for a fast takeover
            }
            next = next.advanced(by: .milliseconds(options.tickMs))
            if next < clock.now { next = clock.now }
            let deadline = next
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(until: deadline, clock: clock) } } catch { break }
        }
        lease.release()
        leaderGauge.record(0)
    }

    /// Rebuilds the planner from KV `mesh_shards` (owners and epochs), keeping the node
    /// table this instance has heard so far.
    private func restore(from shards: KeyValue, current: ShardPlanner, now: ContinuousClock.Instant) throws -> (ShardPlanner, [UInt64]) {
        var assignments: [MeshSupervision.ShardAssignment] = []
        var revisions: [UInt64] = []
        for shard in 0..<current.shardCount {
            if let entry = try shards.get(String(shard)), let stored = try? MeshProto.ShardAssignment(serializedBytes: entry.value) {
                assignments.append(.init(owner: try? NodeID(stored.nodeId), epoch: stored.epoch))
                revisions.append(entry.revision)
            } else {
                assignments.append(.init())
                revisions.append(0)
            }
        }
        var planner = try ShardPlanner(
            shardCount: current.shardCount, configuration: configuration, assignments: assignments, restoredAt: now)
        for (node, state) in current.nodes where state.isAlive {
            planner.heartbeat(node, capacity: state.capacity, draining: state.draining, at: state.lastHeartbeat)
        }
        return (planner, revisions)
    }

    /// Writes moves to KV by compare-and-set. Returns false when a write lost (not leader).
    private func write(
        _ planned: [ShardMove], to shards: KeyValue, revisions: inout [UInt64], events: EventPublisher
    ) -> Bool {
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        for move in planned {
            let value = MeshProto.ShardAssignment(
                shard: UInt32(move.shard), nodeId: move.to?.rawValue ?? "", epoch: move.epoch, assignedAtUnixMs: nowMs,
                reason: move.reason.rawValue, previousNodeId: move.from?.rawValue ?? "")
            do {
                let key = String(move.shard)
                revisions[move.shard] =
                    revisions[move.shard] == 0
                    ? try shards.create(key, value.serializedBytes())
                    : try shards.update(key, value.serializedBytes(), expectedRevision: revisions[move.shard])
                moves.increment()
                events.publish(
                    .shardMoved, node: move.to, reason: move.reason.rawValue,
                    attributes: ["shard": key, "epoch": "\(move.epoch)", "from": move.from?.rawValue ?? "", "to": move.to?.rawValue ?? ""])
            } catch {
                context.logger.warning(
                    "shard assignment write lost", metadata: ["mesh.shard": "\(move.shard)", "error": "\(error)"])
                return false
            }
        }
        context.logger.info("shards assigned", metadata: ["mesh.shard.moves": "\(planned.count)"])
        return true
    }
}
