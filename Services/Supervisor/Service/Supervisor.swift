public import ArgumentParser
import Foundation
import Logging
import MeshClient
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
/// | `--heartbeat-probe` | `MESH_HEARTBEAT_PROBE` | `on` (a node silent for 1.5 intervals is probed; "no responders" = dead at once) |
/// | `--join-hold-down-ms` | `MESH_JOIN_HOLD_DOWN_MS` | `1000` (a joining node's wait for shards) |
/// | `--lease-ttl-ms` | `MESH_LEASE_TTL_MS` | `2000` (leader lease) |
/// | `--tick-ms` | `MESH_SUPERVISOR_TICK_MS` | `50` (planning period) |
public struct SupervisorOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("heartbeat-interval-ms"), help: "Worker heartbeat period in ms (env MESH_HEARTBEAT_INTERVAL_MS).")
    public var heartbeatIntervalMs: Int = MeshEnvironment.int("MESH_HEARTBEAT_INTERVAL_MS", 250)

    @Option(name: .customLong("heartbeat-misses"), help: "Missed heartbeats before a node is dead (env MESH_HEARTBEAT_MISSES).")
    public var heartbeatMisses: Int = MeshEnvironment.int("MESH_HEARTBEAT_MISSES", 3)

    @Option(
        name: .customLong("heartbeat-probe"),
        help: "on|off: probe a node silent for 1.5 heartbeat intervals and declare it dead when nothing answers its probe subject (env MESH_HEARTBEAT_PROBE).")
    public var heartbeatProbe: String = MeshEnvironment.string("MESH_HEARTBEAT_PROBE") ?? "on"

    /// Whether ``heartbeatProbe`` is `on`.
    public var probesSilentNodes: Bool { heartbeatProbe == "on" }

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
        guard ["on", "off"].contains(heartbeatProbe) else { throw ValidationError("--heartbeat-probe must be on or off") }
        guard (0...600_000).contains(joinHoldDownMs) else { throw ValidationError("--join-hold-down-ms must be in 0...600000") }
        guard (500...60_000).contains(leaseTTLMs) else { throw ValidationError("--lease-ttl-ms must be in 500...60000") }
        guard (10...5_000).contains(tickMs) else { throw ValidationError("--tick-ms must be in 10...5000") }
    }
}

/// `mesh-supervisor`: the cluster brain. One instance leads (KV lease with a fencing
/// epoch); the others stand by with a warm view of the nodes and take over when the
/// lease expires.
///
/// The leader tracks node liveness from heartbeats on `<prefix>.node.*.hb` (a node silent
/// for 1.5 intervals is probed on `<prefix>.node.<node>.probe`: when nats-server answers "no
/// responders", the node's process is gone and it is dead at once; otherwise it is dead
/// after `--heartbeat-misses` intervals of silence), assigns shards
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
    // @unchecked: `planner`, `revisions`, `lease`, `leading` and `probed` are touched only by
    // `run`'s loop; heartbeats and probe outcomes arrive on NATS threads into mutexes.
    private let context: ServiceContext
    private let options: SupervisorOptions
    private let configuration: ShardPlanner.Configuration
    private let inbox = Mutex<[(NodeID, NodeHeartbeat, ContinuousClock.Instant)]>([])
    private let inboxLimit = 100_000
    /// Operator requests (`nodes`, `drain`), answered by the loop when it leads.
    private let requests = Mutex<[(SupervisorVerb, NatsMessage)]>([])
    private let requestLimit = 1_000
    /// Liveness probes that found nothing listening: the node and when the probe was sent.
    private let deadOnProbe = Mutex<[(NodeID, ContinuousClock.Instant)]>([])
    /// When each suspect node was last probed (touched only by `run`'s loop).
    private var probed: [NodeID: ContinuousClock.Instant] = [:]
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
                if queue.count < inboxLimit { queue.append((node, beat, received)) }
            }
            heartbeatEndpoint.record(processingTime: ContinuousClock.now - received, error: nil)
        }
        defer { try? subscription.unsubscribe() }
        // Every instance listens; only the leader answers (a standby stays silent, so the
        // requester hears the leader or times out when there is none).
        var requestSubscriptions: [NatsHandlerSubscription] = []
        for verb in [SupervisorVerb.nodes, .drain] {
            let requestLimit = self.requestLimit
            requestSubscriptions.append(
                try context.nats.subscribe(subjects.supervisor(verb: verb), queue: nil) { message in
                    guard message.reply != nil else { return }
                    self.requests.withLock { queue in
                        if queue.count < requestLimit { queue.append((verb, message)) }
                    }
                })
        }
        defer { for subscription in requestSubscriptions { try? subscription.unsubscribe() } }
        var table = NodeTable(drains: try await Self.readDrains(resources.cluster, subjects: subjects))

        var planner = try ShardPlanner(shardCount: resources.shardMap.shardCount, configuration: configuration)
        var revisions = [UInt64](repeating: 0, count: resources.shardMap.shardCount)
        var leading = false
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = clock.now
            for (node, beat, at) in inbox.withLock({ queue in defer { queue.removeAll(keepingCapacity: true) }; return queue }) {
                let wasKnownAlive = planner.nodes[node]?.isAlive ?? false
                if table.heard(node, beat) {
                    await Self.forgetDrain(node, in: resources.cluster, subjects: subjects)
                    if leading { events.publish(.nodeUndrained, node: node, reason: "restarted (new instance \(beat.instanceId))") }
                }
                planner.heartbeat(node, capacity: Double(beat.capacity), draining: beat.draining || table.isDrained(node), at: at)
                if leading && !wasKnownAlive { events.publish(.nodeJoined, node: node, reason: "heartbeats started") }
            }
            let pending = requests.withLock { queue in defer { queue.removeAll(keepingCapacity: true) }; return queue }
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
                    for (verb, message) in pending {
                        await answer(verb, message, planner: &planner, table: &table, epoch: epoch, cluster: resources.cluster, events: events)
                    }
                    let started = clock.now
                    for (node, probedAt) in deadOnProbe.withLock({ found in defer { found.removeAll() }; return found })
                    where planner.confirmDead(node, probedAt: probedAt, now: now) {
                        events.publish(.nodeLost, node: node, reason: "no heartbeat for \(configuration.suspectAfter) and nothing answers its probe")
                    }
                    if options.probesSilentNodes { probe(planner.suspects(now: now), now: now) }
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

    /// Probes each suspect node not probed within the last half heartbeat interval. A probe
    /// answered "no responders" (the node's process has no connection) is queued for
    /// ``ShardPlanner/confirmDead(_:probedAt:now:)`` on the next tick; an answer or a timeout
    /// changes nothing (the node lives or dies by its heartbeats).
    private func probe(_ suspects: [NodeID], now: ContinuousClock.Instant) {
        let suspect = Set(suspects)
        probed = probed.filter { suspect.contains($0.key) }
        let interval = configuration.heartbeatInterval
        for node in suspects where probed[node].map({ now - $0 >= interval / 2 }) ?? true {
            probed[node] = now
            context.nats.request(context.subjects.nodeProbe(node: node), payload: [], timeout: interval) { [self] result in
                if case .failure(let error) = result, error.code == .noResponders {
                    deadOnProbe.withLock { $0.append((node, now)) }
                }
            }
        }
    }

    /// Answers one operator request (the loop leads).
    private func answer(
        _ verb: SupervisorVerb, _ message: NatsMessage, planner: inout ShardPlanner, table: inout NodeTable, epoch: UInt64,
        cluster: KeyValue, events: EventPublisher
    ) async {
        let reply: [UInt8]
        let type: MessageType
        switch verb {
        case .nodes:
            let nodes = Set(planner.nodes.keys).union(table.beats.keys).sorted().map { table.info($0, planner: planner) }
            reply = ListNodesReply(nodes: nodes, leaderId: context.instanceID.rawValue, leaderEpoch: epoch).serializedBytes()
            type = ListNodesReply.messageType
        case .drain:
            type = DrainNodeReply.messageType
            do {
                let request = try DrainNodeRequest(serializedBytes: message.payload)
                guard let node = try? NodeID(request.nodeId) else {
                    throw MeshError(.invalidID, "invalid node id")
                }
                guard planner.nodes[node] != nil else { throw MeshError(.notFound, "no node \(node) is known to the supervisor") }
                if request.undrain {
                    table.drains[node] = nil
                    await Self.forgetDrain(node, in: cluster, subjects: context.subjects)
                    planner.setDraining(node, table.beats[node]?.draining ?? false)
                    events.publish(.nodeUndrained, node: node, reason: "undrained by request")
                } else if table.drains[node] == nil {
                    let instance = table.beats[node]?.instanceId ?? ""
                    let key = ClusterResources.drainKey(node: node)
                    _ = try await BlockingIO.run { () throws(NatsError) -> UInt64 in try cluster.put(key, Array(instance.utf8)) }
                    table.drains[node] = instance
                    planner.setDraining(node, true)
                    events.publish(.nodeDraining, node: node, reason: "drained by request", attributes: ["shards": "\(planner.shards(ownedBy: node).count)"])
                }
                let candidates = planner.liveNodes.filter { $0 != node && planner.isCandidate($0) }.count
                reply = DrainNodeReply(node: table.info(node, planner: planner), candidates: UInt32(candidates)).serializedBytes()
            } catch {
                let failure: MeshError = switch error {
                case let error as MeshError: error
                case is WireError: MeshError(.invalidArgument, "malformed drain request")
                default: MeshError(.unavailable, "the drain could not be recorded: \(error)", retryAfter: .milliseconds(200))
                }
                reply = DrainNodeReply(error: failure.errorReply).serializedBytes()
            }
        case .assignments:
            return
        }
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = type.rawValue
        try? context.nats.respond(to: message, payload: reply, headers: headers)
    }

    /// Operator drains recorded in KV `mesh_cluster` (`drain.<node>` = the drained instance).
    private static func readDrains(_ cluster: KeyValue, subjects: Subjects) async throws -> [NodeID: String] {
        try await BlockingIO.run { () throws -> [NodeID: String] in
            var drains: [NodeID: String] = [:]
            for key in try cluster.keys() {
                guard let node = ClusterResources.drainedNode(key: key), let entry = try cluster.get(key) else { continue }
                drains[node] = String(decoding: entry.value, as: UTF8.self)
            }
            return drains
        }
    }

    private static func forgetDrain(_ node: NodeID, in cluster: KeyValue, subjects: Subjects) async {
        let key = ClusterResources.drainKey(node: node)
        await BlockingIO.run { try? cluster.delete(key) }
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


/// What the supervisor knows of each node beyond the planner's liveness: its last
/// heartbeat (for the node table) and the operator drains (per node instance).
struct NodeTable {
    /// Operator drains: node → the instance that was drained ("" = whatever instance).
    var drains: [NodeID: String]
    /// The latest heartbeat of each node heard.
    var beats: [NodeID: NodeHeartbeat] = [:]

    init(drains: [NodeID: String]) { self.drains = drains }

    func isDrained(_ node: NodeID) -> Bool { drains[node] != nil }

    /// Records a heartbeat. Returns true when it ends a drain: the drained node restarted
    /// (a new instance), so the operator's maintenance is over.
    mutating func heard(_ node: NodeID, _ beat: NodeHeartbeat) -> Bool {
        beats[node] = beat
        guard let drained = drains[node], !drained.isEmpty, drained != beat.instanceId else { return false }
        drains[node] = nil
        return true
    }

    /// The node's row for `nodes` and `drain` replies.
    func info(_ node: NodeID, planner: ShardPlanner) -> NodeInfo {
        let beat = beats[node]
        let state = planner.nodes[node]
        return NodeInfo(
            nodeId: node.rawValue, instanceId: beat?.instanceId ?? "", alive: state?.isAlive ?? false,
            draining: state?.draining ?? false, drainRequested: isDrained(node), capacity: beat?.capacity ?? 0,
            load: beat?.load ?? 0, agentCount: beat?.agentCount ?? 0, shards: planner.shards(ownedBy: node).map { UInt32($0) },
            lastHeartbeatUnixMs: beat?.timestampUnixMs ?? 0, buildVersion: beat?.buildVersion ?? "")
    }
}
