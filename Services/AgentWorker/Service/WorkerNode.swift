import AgentSDK
import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import MeshSupervision
import Metrics
import Nats
import NatsMicro
import ServiceLifecycle
import Synchronization

/// One worker node: owns the shards KV `mesh_shards` assigns it, hosts their agents, routes
/// actions to them, checkpoints their state and supervises them.
///
/// Concurrency: a single control loop (``run()``) owns every decision — shard changes,
/// spec changes, supervision decisions, checkpoints, status writes — fed by an
/// ``Input`` stream. The hot path (an action arriving on the NATS delivery thread) only
/// reads the ``Routing`` table under a lock and hands the action to the agent's mailbox,
/// without creating a task.
///
/// Guarantees (documented in the README):
/// - A shard is served only while this node holds its current epoch; a request stamped
///   with another epoch is refused (`stale_epoch` or `unavailable`) and the client retries.
/// - Agent state survives a move or a crash up to its last checkpoint: changed state is
///   written to KV `mesh_state` every `--checkpoint-interval-ms` (default 100 ms) and on
///   every clean hand-over (drain, shutdown, shard moved away while this node lives).
/// - A checkpoint never replaces one written by a newer owner of the shard: writes are
///   fenced by the shard epoch (``StateCheckpoints``).
/// - An agent restores only a checkpoint of its own life (`AgentSpec.incarnation`): one
///   created again under a deleted agent's id never restores the deleted one's state.
/// - A node that sent no heartbeat for longer than its lease (1.5 heartbeat intervals: it
///   was frozen, starved or cut off, and may have been declared dead) refuses every request
///   until it has read the shard owners from KV again and released what it lost.
final class WorkerNode: Service, @unchecked Sendable {
    // @unchecked: `agents`, `groups` and the other `var`s are touched only by the control
    // loop; `routing`, `dirty` and `input` are locked or thread-safe.

    enum Input: Sendable {
        /// A shard's owner changed; `atStart`: an assignment this node held already when it
        /// started (a restart with the same id), not a move to it.
        case shard(Int, ShardDirectory.Owner, atStart: Bool = false)
        /// Spec changes are waiting in ``pendingSpecs`` (yielded once per batch).
        case specs
        case failed(AgentID, String)
        case restartDue([AgentID], group: String, reason: String)
        /// Open the task consumer of a shard taken at `epoch` (queued behind the shards taken
        /// with it, so that every taken shard's agents answer first).
        case startTasks(Int, epoch: UInt64)
        /// Graceful shutdown began: drain (hand the shards over), then stop.
        case drain
        /// Stop now (drained, nothing can take the shards, or the drain timed out).
        case stop
        /// The lease lapsed: read the owners of this node's shards from KV, release what
        /// moved, then serve again.
        case revalidate
        /// Record the arrivals of agents started by shard take-overs (``announcements``),
        /// queued behind the shard changes that came with them.
        case announce
    }

    /// What the NATS delivery threads read: owned shards with their epochs, running cells.
    struct Routing {
        var epochs: [Int: UInt64] = [:]
        var cells: [AgentID: AgentCell] = [:]
        var starting: Set<AgentID> = []
        /// Agents whose checkpoint the periodic flush is writing (see ``remove(_:reason:)``).
        var flushing: Set<AgentID> = []
    }

    let context: ServiceContext
    let options: WorkerOptions
    private let node: NodeID
    private let routing = Mutex(Routing())
    /// Set when the node stops: heartbeats say so and the supervisor moves its shards away.
    let isDraining = Atomic<Bool>(false)
    private let dirty = Mutex<Set<AgentID>>([])
    /// `mesh_agents` watch entries not yet handled, in watch order. The control loop takes
    /// them all at once, so the checkpoints of a burst of new agents are read concurrently
    /// instead of one round trip after another.
    private let pendingSpecs = Mutex<[KeyValueEntry]>([])
    /// Entries ``pendingSpecs`` may hold before the watch waits (the watch itself buffers
    /// a bounded number more).
    static let maxPendingSpecs = 8_192
    /// State deletes of removed agents not acknowledged yet, per agent: an agent created
    /// again meanwhile waits for them before reading its checkpoint (see ``specsChanged(_:)``).
    private let stateDeletes = Mutex<[AgentID: Int]>([:])
    /// The `mesh_state` revision of each hosted agent's checkpoint as last read or written
    /// here (0: none), so that a checkpoint is one compare-and-set (see ``StateCheckpoints``).
    private let stateRevisions = Mutex<[AgentID: UInt64]>([:])
    private let input: AsyncStream<Input>
    private let inputContinuation: AsyncStream<Input>.Continuation
    private var runtime: AgentRuntime!
    private var resources: ClusterResources!
    private var checkpoints: StateCheckpoints!
    private var events: EventPublisher!
    private var supervisor: SupervisorClient!

    // Control-loop state.
    private var specs: SpecTable!
    private var subscriptions: [Int: NatsHandlerSubscription] = [:]
    private var groups: [String: SupervisionGroup] = [:]
    /// The group each agent joined (a leave looks up one group instead of scanning every
    /// group: deleting 10 000 agents was quadratic).
    private var memberships: [AgentID: String] = [:]
    private var restartCounts: [AgentID: UInt32] = [:]
    /// Agents started by shard take-overs whose events (`placed` or `migrated`, `started`)
    /// and `running` status are not written yet. A lost node's shards arrive together; their
    /// agents answer first, and these writes (three per agent, each stored, mirrored and
    /// watched) follow once the queued shard changes are handled (``Input/announce``), or
    /// before any other input, so that an agent's later events and status come after them.
    private var announcements: [Announcement] = []

    /// An agent's arrival, not written yet (see ``announcements``).
    struct Announcement {
        var agent: AgentID
        var spec: AgentSpec
        /// nil: a restart in place (no `placed` or `migrated` event).
        var arrival: Arrival?
        var reason: String
        var restored: Bool
        var at: Date
    }
    private var rng = SystemRandomNumberGenerator()
    /// Task consumers of owned shards (read by the cancel watch).
    private let taskRunners = Mutex<[Int: ShardTasks]>([:])
    private let cancelledTasks = Mutex(CancelledTasks())
    private var taskHost: TaskHost!

    private let actionsServed = Counter(label: "mesh_actions_total", dimensions: [("outcome", "ok")])
    private let actionsFailed = Counter(label: "mesh_actions_total", dimensions: [("outcome", "error")])
    private let actionLatency = Timer(label: "mesh_action_duration")
    private let agentGauge = Gauge(label: "mesh_agents_hosted")
    private let shardGauge = Gauge(label: "mesh_shards_owned")
    private let checkpointsWritten = Counter(label: "mesh_checkpoints_written_total")
    private let checkpointsFenced = Counter(label: "mesh_checkpoints_fenced_total")
    private let checkpointsIgnored = Counter(label: "mesh_checkpoints_ignored_total")

    /// How long the node may go without a heartbeat sent on a connected link before it
    /// assumes that it may have been declared dead: 1.5 heartbeat intervals, the silence
    /// after which the supervisor starts probing a node.
    private let leaseTimeout: Duration
    private let clockOrigin = ContinuousClock.now
    /// When the last heartbeat went out, in nanoseconds since `clockOrigin` (-1: none yet).
    private let lastHeartbeat = Atomic<Int64>(-1)
    /// Set when the lease lapsed: requests are refused until ``revalidate()`` has run.
    private let suspended = Atomic<Bool>(false)
    private let leaseLapses = Counter(label: "mesh_worker_lease_lapses_total")

    init(context: ServiceContext, options: WorkerOptions) {
        self.context = context
        self.options = options
        self.node = context.instanceID
        self.leaseTimeout = .milliseconds(options.heartbeatIntervalMs) * 1.5
        (input, inputContinuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    /// Shards owned and agents hosted, for the heartbeat.
    var ownership: (shards: [(Int, UInt64)], agents: Int) {
        routing.withLock { routing in (routing.epochs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, routing.cells.count) }
    }

    func run() async throws {
        let logger = context.logger
        let js = try context.nats.jetStream()
        let (subjects, common) = (context.subjects, context.options)
        resources = try await StartupRetry.run("cluster resources", logger: logger) {
            try await ClusterResources.ensure(
                js, subjects: subjects, replicas: common.jetStreamReplicas, shardCount: common.shardCount, logger: logger)
        }
        checkpoints = StateCheckpoints(bucket: resources.state)
        specs = SpecTable(shardMap: resources.shardMap)
        events = EventPublisher(js: js, subjects: context.subjects, node: node, logger: logger)
        supervisor = SupervisorClient(connection: context.nats, subjects: context.subjects, timeout: .seconds(1))
        let input = inputContinuation
        let shards = try ShardDirectory(kv: resources.shards, shardCount: resources.shardMap.shardCount)
        runtime = AgentRuntime(
            registry: .builtIn(options.kindOptions), logger: logger,
            dispatcher: MeshDispatcher(
                client: ActionClient(connection: context.nats, subjects: context.subjects, shardMap: resources.shardMap, shards: shards),
                registry: RegistryClient(connection: context.nats, subjects: context.subjects, shardMap: resources.shardMap)),
            onFailure: { failure in input.yield(.failed(failure.agentID, failure.description)) },
            onStateChange: { [weak self] cell in _ = self?.dirty.withLock { $0.insert(cell.id) } })

        taskHost = TaskHost(
            node: node, subjects: context.subjects, shardMap: resources.shardMap, jetStream: js, logger: logger,
            settings: options.taskSettings, metrics: TaskMetrics(),
            target: { [weak self] agent in self?.taskTarget(agent) ?? .unknown },
            isCancelled: { [weak self] id in self?.cancelledTasks.withLock { $0.contains(id) } ?? false })
        let cancelWatch = try resources.taskCancel.watch()

        shards.onChange { shard, owner in input.yield(.shard(shard, owner)) }
        let specWatch = try resources.agents.watch()

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await shards.run() }
            group.addTask { [weak self] in
                for await event in specWatch {
                    guard case .entry(let entry) = event, let self else { continue }
                    while self.pendingSpecs.withLock({ $0.count }) >= Self.maxPendingSpecs {
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                    let first = self.pendingSpecs.withLock { pending in
                        pending.append(entry)
                        return pending.count == 1
                    }
                    if first { input.yield(.specs) }
                }
            }
            group.addTask { [weak self] in
                for await event in cancelWatch {
                    guard case .entry(let entry) = event, entry.operation == .put else { continue }
                    self?.taskCancelRequested(entry.key)
                }
            }
            await shards.waitUntilLoaded()
            // Shards already assigned to this node (a restart with the same id) are taken now.
            for (shard, owner) in shards.all.enumerated() where owner.node == node { input.yield(.shard(shard, owner, atStart: true)) }
            group.addTask { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(self?.options.checkpointIntervalMs ?? 100))
                    await self?.flushCheckpoints()
                }
            }
            // One timer for the timed work of every shard's tasks (not one per shard: 32
            // shards' 50 ms timers were most of an idle worker's CPU).
            group.addTask { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: ShardTasks.housekeepingTick)
                    guard let runners = self?.taskRunners.withLock({ Array($0.values) }) else { return }
                    let now = ContinuousClock.now
                    for runner in runners { runner.housekeep(now: now) }
                }
            }
            group.addTask { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(2))
                    guard let runners = self?.taskRunners.withLock({ Array($0.values) }) else { return }
                    for runner in runners { await runner.refreshGauges() }
                }
            }
            let input = self.inputContinuation
            await withGracefulShutdownHandler {
                for await event in self.input {
                    if case .stop = event { break }
                    await self.handle(event)
                    if self.isDraining.load(ordering: .relaxed) && self.routing.withLock({ $0.epochs.isEmpty }) { break }
                }
            } onGracefulShutdown: {
                input.yield(.drain)
            }
            // Clean stop: stop serving what was not handed over, checkpoint it.
            await self.releaseAll(reason: "node stopping")
            shards.stop()
            specWatch.stop()
            cancelWatch.stop()
            group.cancelAll()
        }
    }

    // MARK: Control loop

    private func handle(_ event: Input) async {
        switch event {
        case .shard, .announce: break
        default: announcePending()
        }
        switch event {
        case .shard(let shard, let owner, let atStart): await shardChanged(shard, owner, atStart: atStart)
        case .announce: announcePending()
        case .specs: await specsChanged(pendingSpecs.withLock { pending in defer { pending.removeAll() }; return pending })
        case .failed(let agent, let reason): await agentFailed(agent, reason: reason)
        case .restartDue(let agents, let group, let reason): await restart(agents, group: group, reason: reason)
        case .startTasks(let shard, let epoch): await startTasks(shard, epoch: epoch)
        case .drain: await drain()
        case .stop: break
        case .revalidate: await revalidate()
        }
    }

    // MARK: Lease

    private func sinceOrigin(_ instant: ContinuousClock.Instant) -> Int64 { (instant - clockOrigin).totalNanoseconds }

    /// Renews the lease: the heartbeat calls it after each heartbeat sent while connected.
    /// A gap longer than the lease since the previous one (the process was frozen, say)
    /// suspends the node first, so a request that sees the new time sees the suspension.
    func heartbeatSent(at now: ContinuousClock.Instant = .now) {
        let stamp = sinceOrigin(now)
        let last = lastHeartbeat.load(ordering: .acquiring)
        if last >= 0, Duration.nanoseconds(stamp - last) > leaseTimeout { lapse() }
        lastHeartbeat.store(stamp, ordering: .releasing)
    }

    /// Whether requests must be refused at `now` (the lease lapsed, or re-reading the shard
    /// owners is under way).
    private func leaseLapsed(at now: ContinuousClock.Instant) -> Bool {
        let last = lastHeartbeat.load(ordering: .acquiring)
        if suspended.load(ordering: .acquiring) { return true }
        guard last >= 0, Duration.nanoseconds(sinceOrigin(now) - last) > leaseTimeout else { return false }
        lapse()
        return true
    }

    private func lapse() {
        guard !suspended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        leaseLapses.increment()
        context.logger.warning("lease lapsed (no heartbeat sent in time); refusing requests until the shard owners are read again")
        inputContinuation.yield(.revalidate)
    }

    /// Reads the owners of this node's shards from KV in one batched read (not the watch,
    /// which may lag), releases the shards that moved, and renews the lease. Retried while
    /// KV cannot be read.
    private func revalidate() async {
        let owned = routing.withLock { $0.epochs }
        guard let entries = try? await resources.shards.values(owned.keys.map(String.init)) else {
            let input = inputContinuation
            Task {
                try? await Task.sleep(for: .milliseconds(100))
                input.yield(.revalidate)
            }
            return
        }
        var released = 0
        for shard in owned.keys.sorted() {
            // A shard without a current value has no owner.
            let owner = entries[String(shard)].map(ShardDirectory.owner(of:)) ?? ShardDirectory.Owner(node: nil, epoch: 0)
            guard owner.node != node || owner.epoch != owned[shard] else { continue }
            if owner.node != node { released += 1 }
            await shardChanged(shard, owner, atStart: false)
        }
        lastHeartbeat.store(sinceOrigin(.now), ordering: .releasing)
        suspended.store(false, ordering: .releasing)
        context.logger.info("shard owners read again; serving", metadata: ["mesh.shards.released": "\(released)"])
    }

    /// Starts a graceful stop: heartbeats say `draining`, the supervisor leader is asked to
    /// move this node's shards away (each is handed over with its newest state), and the
    /// loop ends once none is left — at once when no other node can take them or no leader
    /// answers, at the latest after `--drain-timeout-ms`.
    private func drain() async {
        guard !isDraining.exchange(true, ordering: .relaxed) else { return }
        let (input, supervisor, node) = (inputContinuation, supervisor!, node)
        let deadline = ContinuousClock.now + .milliseconds(options.drainTimeoutMs)
        // Until the deadline, stop as soon as no other node could take the shards (the
        // whole mesh stopping at once, say).
        Task {
            while ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(250))
                if let nodes = try? await supervisor.nodes().nodes,
                    !nodes.contains(where: { $0.nodeId != node.rawValue && $0.alive && !$0.draining && $0.capacity > 0 })
                {
                    break
                }
            }
            input.yield(.stop)
        }
        guard routing.withLock({ !$0.epochs.isEmpty }) else {
            input.yield(.stop)
            return
        }
        do {
            let (info, candidates) = try await supervisor.drain(node)
            context.logger.info("draining before stop", metadata: ["mesh.shards": "\(info.shards.count)", "mesh.nodes.candidates": "\(candidates)"])
            if candidates == 0 { input.yield(.stop) }
        } catch {
            context.logger.warning("stopping without a drain", metadata: ["error": "\(error)"])
            input.yield(.stop)
        }
    }

    private func shardChanged(_ shard: Int, _ owner: ShardDirectory.Owner, atStart: Bool) async {
        let current = routing.withLock { $0.epochs[shard] }
        if owner.node == node {
            guard current.map({ owner.epoch > $0 }) ?? true else { return }
            if current != nil {
                routing.withLock { $0.epochs[shard] = owner.epoch }  // re-assigned to us with a newer epoch
                return
            }
            let movedFrom = atStart ? nil : owner.previous.flatMap { $0 == node ? nil : $0 }
            await take(
                shard, epoch: owner.epoch, handedOverBy: owner.previousAlive ? owner.previous : nil,
                arrival: movedFrom.map { .migrated(from: $0, cause: owner.reason) } ?? .placed)
        } else if current != nil {
            // Only a planned move away from this node (or an unassignment, with no successor
            // to overwrite) hands the agents' newest state over. A node that was declared dead
            // meanwhile — frozen, or cut off from NATS — learns of the move late: its
            // successor already restored the last checkpoints and may have changed them
            // since, so this node's stale cells are dropped without a checkpoint. (Had it
            // tried, the epoch fence of ``StateCheckpoints`` would refuse the write.)
            let planned = owner.node == nil || (owner.previous == node && owner.previousAlive)
            await release(
                shard, reason: "shard \(shard) moved to \(owner.node?.rawValue ?? "no node") (epoch \(owner.epoch))", handOver: planned,
                toEpoch: owner.node == nil ? nil : owner.epoch)
        }
    }

    /// Starts serving a shard: routing first (requests wait as `unavailable` until their
    /// agent is up), then the subscription, then the agents restored from their checkpoints;
    /// its task consumer opens after the shards taken in the same batch (a lost node's
    /// shards arrive together) have their agents answering.
    /// - Parameters:
    ///   - handedOverBy: the live previous owner (a planned move): its hand-over marker is
    ///     awaited first, so the agents start from the state it had when it let go.
    ///   - arrival: how the agents came here, for their timeline (`placed`, or `migrated`
    ///     from the shard's previous owner).
    private func take(_ shard: Int, epoch: UInt64, handedOverBy previous: NodeID? = nil, arrival: Arrival) async {
        let known = specs.agents(of: shard)
        routing.withLock {
            $0.epochs[shard] = epoch
            $0.starting.formUnion(known)
        }
        do {
            subscriptions[shard] = try context.nats.subscribe(
                context.subjects.actionWildcard(shard: shard), queue: context.subjects.actionQueue(shard: shard),
                handler: { [weak self] message in self?.route(message, shard: shard) })
        } catch {
            context.logger.error("cannot serve shard", metadata: ["mesh.shard": "\(shard)", "error": "\(error)"])
        }
        // The agents' specs and (after a failure, with no hand-over to wait for) their
        // checkpoints are read together.
        let handingOver = previous.map { $0 != node } ?? false
        let (agentsBucket, checkpoints, logger) = (resources.agents, self.checkpoints!, context.logger)
        async let specEntries = Self.readSpecs(of: known, from: agentsBucket, logger: logger)
        async let earlyStates = handingOver || known.isEmpty ? nil : try? await checkpoints.read(known)
        if let previous, handingOver, !known.isEmpty { await awaitHandOver(shard, epoch: epoch, from: previous) }
        let agents = storeSpecs(of: known, await specEntries)
        let missing = Set(known).subtracting(agents)
        if !missing.isEmpty { routing.withLock { $0.starting.subtract(missing) } }
        let snapshots = await loadStates(agents, read: await earlyStates)
        let announcing = !announcements.isEmpty
        for agent in agents {
            await start(
                agent, reason: "shard \(shard) taken over at epoch \(epoch)", arrival: arrival, preloaded: .some(snapshots[agent]),
                announceLater: true)
        }
        if !announcing && !announcements.isEmpty { inputContinuation.yield(.announce) }
        inputContinuation.yield(.startTasks(shard, epoch: epoch))
        updateGauges()
        context.logger.info("shard taken", metadata: ["mesh.shard": "\(shard)", "mesh.shard.epoch": "\(epoch)", "mesh.agents": "\(agents.count)"])
    }

    /// Reads the `mesh_agents` records of a shard's agents (batched direct gets, as the
    /// lease's re-read of the shard owners: nats-server 2.11 or later): this node kept only
    /// their ids while another node owned the shard. Retries a failed read
    /// (≤ ``specReadAttempts`` times, backing off up to 1 s); nil when every attempt failed.
    private static func readSpecs(of agents: [AgentID], from bucket: KeyValue, logger: Logger) async -> [String: KeyValueEntry]? {
        guard !agents.isEmpty else { return [:] }
        var delay = Duration.milliseconds(50)
        for attempt in 1...specReadAttempts {
            do {
                return try await bucket.values(agents.map(\.rawValue))
            } catch {
                logger.warning("cannot read the specs of a shard's agents", metadata: ["mesh.agents": "\(agents.count)", "attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
        logger.error("agents of a taken shard not started: their specs cannot be read", metadata: ["mesh.agents": "\(agents.count)"])
        return nil
    }

    /// Stores the specs ``readSpecs(of:from:logger:)`` read.
    /// - Returns: the agents with a spec, in id order (an agent deleted meanwhile has none).
    private func storeSpecs(of agents: [AgentID], _ entries: [String: KeyValueEntry]?) -> [AgentID] {
        guard let entries else { return [] }
        return agents.filter { agent in
            guard let entry = entries[agent.rawValue] else { return false }
            guard let record = try? AgentRecord(serializedBytes: entry.value) else {
                context.logger.warning("unreadable agent record", metadata: ["mesh.agent.id": "\(agent)"])
                return false
            }
            // A stale read (the watch has a later revision) leaves the spec the watch stored.
            _ = specs.store(agent, spec: SpecTable.spec(of: record, storedAt: entry.revision), revision: entry.revision)
            return specs[agent] != nil
        }
    }

    /// Reads of a taken shard's specs before its agents are given up.
    static let specReadAttempts = 8

    /// Waits (at most ``handOverTimeout``) until the previous owner of `shard` has written its
    /// hand-over marker for `epoch` or a later one.
    private func awaitHandOver(_ shard: Int, epoch: UInt64, from previous: NodeID) async {
        let (bucket, key) = (resources.state, ClusterResources.handOverKey(shard: shard))
        let deadline = ContinuousClock.now + Self.handOverTimeout
        while ContinuousClock.now < deadline {
            let handed = await BlockingIO.run { (try? bucket.get(key)).flatMap { $0 }.flatMap { UInt64(String(decoding: $0.value, as: UTF8.self)) } }
            if let handed, handed >= epoch { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
        context.logger.warning(
            "no hand-over from the previous owner; agents restart from their last checkpoint",
            metadata: ["mesh.shard": "\(shard)", "mesh.node.previous": "\(previous)"])
    }

    /// How long a new owner waits for a live previous owner's hand-over.
    static let handOverTimeout = Duration.seconds(2)

    /// Stops serving a shard at once; with `handOver`, checkpoints its agents first (this
    /// node is alive and its state is the newest).
    /// - Parameter toEpoch: the epoch of the new owner: once the checkpoints are written, the
    ///   hand-over marker tells it so.
    private func release(_ shard: Int, reason: String, handOver: Bool, toEpoch: UInt64? = nil) async {
        announcePending()  // arrivals before departures
        let subscription = subscriptions.removeValue(forKey: shard)
        taskRunners.withLock { $0.removeValue(forKey: shard) }?.stop()
        let (cells, epoch) = routing.withLock { routing -> ([AgentCell], UInt64?) in
            let epoch = routing.epochs.removeValue(forKey: shard)
            let moving = routing.cells.filter { resources.shardMap.shard(of: $0.key) == shard }
            for id in moving.keys { routing.cells[id] = nil }
            return (Array(moving.values), epoch)
        }
        specs.release(shard: shard)
        // A drain, not an unsubscribe: requests already delivered here are still answered
        // (`unavailable`, so the client retries at the new owner) instead of vanishing with
        // the subscription while their callers wait out their whole timeout.
        // The wrapper must outlive the drain: releasing it destroys the C subscription and
        // drops what is still pending.
        if let subscription {
            try? subscription.beginDrain(timeout: .seconds(5))
            Task { _ = await subscription.waitUntilComplete(timeout: .seconds(6)) }
        }
        if handOver { await awaitFlushes(of: cells.map(\.id)) }
        await Self.concurrently(cells, limit: Self.concurrentCheckpoints) { cell in
            await cell.stop(.reject)
            if handOver, let epoch { await self.checkpoint(cell, epoch: epoch) }
        }
        for cell in cells {
            stateRevisions.withLock { $0[cell.id] = nil }
            events.publish(.agentStopped, agent: cell.id, reason: reason)
        }
        if handOver, let toEpoch {
            let (bucket, key) = (resources.state, ClusterResources.handOverKey(shard: shard))
            await BlockingIO.run { _ = try? bucket.put(key, Array(String(toEpoch).utf8)) }
        }
        updateGauges()
        context.logger.info("shard released", metadata: ["mesh.shard": "\(shard)", "mesh.agents": "\(cells.count)"])
    }

    private func taskTarget(_ agent: AgentID) -> TaskTarget {
        // A lapsed lease holds tasks as it refuses actions, until the shard owners were read again.
        if leaseLapsed(at: .now) { return .starting }
        return routing.withLock { routing -> TaskTarget in
            if let cell = routing.cells[agent] { return .ready(cell) }
            return routing.starting.contains(agent) ? .starting : .unknown
        }
    }

    /// A cancel request arrived (KV `mesh_task_cancel`): remembered for tasks not fetched
    /// yet, applied at once to a queued or running one.
    private func taskCancelRequested(_ taskId: String) {
        cancelledTasks.withLock { $0.insert(taskId) }
        for runner in taskRunners.withLock({ Array($0.values) }) { runner.cancel(taskId) }
    }

    /// Starts the shard's task consumer (retried in the background while JetStream refuses)
    /// while this node still owns the shard at `epoch` or a later epoch (a re-assignment to
    /// this node between the take and now only raised the epoch).
    private func startTasks(_ shard: Int, epoch: UInt64) async {
        let host = taskHost!
        var delay: Duration = .milliseconds(100)
        func owned() -> UInt64? { routing.withLock { routing in routing.epochs[shard].flatMap { $0 >= epoch ? $0 : nil } } }
        while let current = owned(), taskRunners.withLock({ $0[shard] == nil }) {
            do {
                let runner = try await BlockingIO.run { () throws(NatsError) -> ShardTasks in
                    try ShardTasks.open(shard: shard, epoch: current, host: host)
                }
                guard owned() == current else {
                    runner.stop()
                    continue  // released (the loop ends) or re-assigned again (open at the new epoch)
                }
                taskRunners.withLock { $0[shard] = runner }
                Task { await runner.run() }
                return
            } catch {
                context.logger.warning("task consumer not started; retrying", metadata: ["mesh.shard": "\(shard)", "error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    private func releaseAll(reason: String) async {
        for shard in routing.withLock({ Array($0.epochs.keys) }) { await release(shard, reason: reason, handOver: true) }
    }

    /// Applies spec changes in watch order. New agents of owned shards start together after
    /// the others: their checkpoints (a recreated or late-seen agent may have one) are read
    /// concurrently, and meanwhile requests to them get `unavailable`, not `not_found`.
    private func specsChanged(_ entries: [KeyValueEntry]) async {
        var created: [AgentID] = []
        var waiting = Set<AgentID>()
        for entry in entries {
            guard let agent = try? AgentID(entry.key) else { continue }
            if entry.operation != .put {
                guard specs.remove(agent, revision: entry.revision) else { continue }  // created again since
                if waiting.remove(agent) != nil { _ = routing.withLock { $0.starting.remove(agent) } }
                await remove(agent, reason: "agent deleted")
                continue
            }
            guard ownsShard(of: agent) else {
                specs.note(agent, revision: entry.revision)  // its spec is read if its shard comes here
                continue
            }
            guard let record = try? AgentRecord(serializedBytes: entry.value) else {
                context.logger.warning("unreadable agent record", metadata: ["mesh.agent.id": "\(agent)"])
                continue
            }
            let stored = specs.store(agent, spec: SpecTable.spec(of: record, storedAt: entry.revision), revision: entry.revision)
            guard stored != .stale, !waiting.contains(agent) else { continue }  // a waiting agent starts with its newest spec
            guard case .replaced(let previous) = stored else {
                created.append(agent)
                waiting.insert(agent)
                routing.withLock { _ = $0.starting.insert(agent) }
                continue
            }
            if previous.generation == record.spec.generation, routing.withLock({ $0.cells[agent] != nil }) { continue }
            // Restarting for the new spec: while the old cell stops and checkpoints, requests
            // get `unavailable` (retried by the client), not `not_found`. `start` clears it.
            routing.withLock { _ = $0.starting.insert(agent) }
            await stopCell(agent)
            await start(agent, reason: "spec updated to generation \(record.spec.generation)", arrival: nil)
        }
        created.removeAll { !waiting.contains($0) }
        guard !created.isEmpty else { return }
        await awaitStateDeletes(of: created)
        let snapshots = await loadStates(created)
        for agent in created {
            await start(agent, reason: "agent created", arrival: .placed, preloaded: .some(snapshots[agent]))
        }
    }

    private func ownsShard(of agent: AgentID) -> Bool { ownedEpoch(of: agent) != nil }

    /// The epoch at which this node holds the agent's shard; nil when it does not.
    private func ownedEpoch(of agent: AgentID) -> UInt64? {
        let shard = resources.shardMap.shard(of: agent)
        return routing.withLock { $0.epochs[shard] }
    }

    /// How an agent came to this node, for its timeline.
    enum Arrival {
        /// Its first placement (a new agent, an unassigned shard, this node restarted).
        case placed
        /// Its shard moved here from `from` (`cause`: the assignment's reason).
        case migrated(from: NodeID, cause: ShardMoveReason?)
    }

    /// Creates (or re-creates) an agent's cell from its spec and last checkpoint.
    /// - Parameters:
    ///   - arrival: the `placed` or `migrated` event to record before `started`; nil for a
    ///     restart in place (a new spec).
    ///   - preloaded: the agent's checkpoint when the caller read it already (`.some(nil)`:
    ///     it has none); `nil` reads it now.
    ///   - announceLater: leave the arrival's events and status to ``announcePending()``.
    private func start(_ agent: AgentID, reason: String, arrival: Arrival?, preloaded: [UInt8]?? = nil, announceLater: Bool = false) async {
        defer { _ = routing.withLock { $0.starting.remove(agent) } }
        guard let spec = specs[agent], ownsShard(of: agent) else { return }
        let snapshot: [UInt8]?
        if let preloaded { snapshot = preloaded } else { snapshot = await loadState(agent) }
        do {
            let cell = try runtime.makeCell(spec: spec, restoringFrom: snapshot)
            routing.withLock { $0.cells[agent] = cell }
            try joinGroup(agent, spec: spec)
            let started = Announcement(agent: agent, spec: spec, arrival: arrival, reason: reason, restored: snapshot != nil, at: Date())
            if announceLater {
                announcements.append(started)
            } else {
                announce(started)
            }
        } catch {
            let failure = error as? MeshError ?? MeshError(.internalError, "\(error)")
            context.logger.warning("agent cannot start", metadata: ["mesh.agent.id": "\(agent)", "error": "\(failure)"])
            events.publish(.agentFailed, agent: agent, reason: "cannot start: \(failure.message)")
            writeStatus(agent, spec: spec, status: .failed, error: failure)
        }
        updateGauges()
    }

    /// Writes an agent's arrival: its `placed` or `migrated` event (none for a restart in
    /// place), `started`, and its `running` status, all stamped with its start.
    private func announce(_ started: Announcement) {
        let (agent, reason) = (started.agent, started.reason)
        let shard = resources.shardMap.shard(of: agent)
        switch started.arrival {
        case .placed: events.publish(.agentPlaced, agent: agent, reason: reason, attributes: ["shard": "\(shard)"], at: started.at)
        case .migrated(let from, let cause):
            events.publish(
                .agentMigrated, agent: agent, reason: "\(reason), from \(from) (\(cause?.rawValue ?? "moved"))",
                attributes: ["shard": "\(shard)", "from": from.rawValue, "cause": cause?.rawValue ?? ""], at: started.at)
        case nil: break
        }
        events.publish(.agentStarted, agent: agent, reason: started.restored ? "\(reason); state restored" : reason, at: started.at)
        writeStatus(agent, spec: started.spec, status: .running, error: nil, at: started.at)
    }

    /// Writes the arrivals ``announcements`` holds, in start order.
    private func announcePending() {
        guard !announcements.isEmpty else { return }
        for started in announcements { announce(started) }
        announcements.removeAll()
    }

    private func stopCell(_ agent: AgentID) async {
        guard let cell = routing.withLock({ $0.cells.removeValue(forKey: agent) }) else { return }
        await cell.stop(.drain)
        await awaitFlushes(of: [agent])
        if let epoch = ownedEpoch(of: agent) { await checkpoint(cell, epoch: epoch) }
    }

    /// Waits (at most 6 s) until the periodic flush has stored the checkpoints it began of
    /// `agents`, which have left the routing table (so no new one begins). A checkpoint this
    /// node writes next — at a hand-over, a restart for a new spec, or a delete — then comes
    /// after it: a flush's write that lost its compare-and-set to a newer one of the same
    /// owner would replace it (same epoch) with an older state, or bring a deleted agent's
    /// state back behind the delete marker.
    private func awaitFlushes(of agents: some Collection<AgentID>) async {
        await Self.waitWhile(atMost: .seconds(6)) { self.routing.withLock { !$0.flushing.isDisjoint(with: agents) } }
    }

    private func remove(_ agent: AgentID, reason: String) async {
        if let cell = routing.withLock({ $0.cells.removeValue(forKey: agent) }) {
            await cell.stop(.reject)
            events.publish(.agentStopped, agent: agent, reason: reason)
        }
        leaveGroup(agent)
        if ownsShard(of: agent) {
            await awaitFlushes(of: [agent])  // stored before the delete marker, not behind it
            // Only the checkpoint this node knows, by a compare-and-set on its revision: a key
            // that moved on holds a later life's checkpoint, written by a newer owner of the
            // shard that this node has not heard of yet, and must stay. With none known (0:
            // the agent had no checkpoint here; nil: it could not be read) nothing is
            // deleted: a checkpoint left behind is never restored by a later life
            // (incarnations, see StateCheckpoints).
            // Without waiting: a burst of deletes must not hold the control loop (and the
            // creates queued behind them) for two KV round trips each.
            if let known = stateRevisions.withLock({ $0.removeValue(forKey: agent) }), known > 0 {
                stateDeletes.withLock { $0[agent, default: 0] += 1 }
                let deleted: @Sendable (Result<PubAck, NatsError>) -> Void = { [weak self] _ in self?.stateDeleteSettled(agent) }
                do { try resources.state.deleteAsync(agent.rawValue, expectedRevision: known, completion: deleted) } catch { stateDeleteSettled(agent) }
            }
            try? resources.status.deleteAsync(agent.rawValue)
        }
        updateGauges()
    }

    private func stateDeleteSettled(_ agent: AgentID) {
        stateDeletes.withLock { pending in
            pending[agent, default: 1] -= 1
            if pending[agent] == 0 { pending[agent] = nil }
        }
    }

    /// Waits (at most 2 s) until the state deletes of `agents` still on their way are
    /// stored: a read before that could find the deleted incarnation's checkpoint (the
    /// delete and the read travel separately), and a first checkpoint could land before
    /// the delete marker and be deleted by it.
    private func awaitStateDeletes(of agents: [AgentID]) async {
        var waiting = stateDeletes.withLock { pending in agents.filter { pending[$0] != nil } }
        await Self.waitWhile(atMost: .seconds(2)) {
            waiting = self.stateDeletes.withLock { pending in waiting.filter { pending[$0] != nil } }
            return !waiting.isEmpty
        }
    }

    /// Polls `condition` every millisecond while it holds, for at most `limit` (waits that
    /// end within a KV round trip or two).
    private static func waitWhile(atMost limit: Duration, _ condition: () -> Bool) async {
        let deadline = ContinuousClock.now + limit
        while condition(), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    // MARK: Supervision

    private func groupName(_ agent: AgentID, _ spec: AgentSpec) -> String { spec.group.isEmpty ? "agent:\(agent)" : spec.group }

    /// Makes `agent` a child of its supervision group. An agent without a group has a group
    /// of its own, made only when it first fails (`now`, from ``agentFailed(_:reason:)``):
    /// until then it is the same as an empty history, and thousands of idle agents need no
    /// group each. Its intensity is checked at once either way.
    private func joinGroup(_ agent: AgentID, spec: AgentSpec, now: Bool = false) throws {
        let name = groupName(agent, spec)
        if let current = memberships[agent], current != name { leaveGroup(agent) }  // the spec moved it to another group
        let intensity = try RestartIntensity(
            maxRestarts: spec.maxRestarts == 0 ? 3 : Int(spec.maxRestarts), periodSeconds: spec.periodSeconds == 0 ? 5 : Int(spec.periodSeconds))
        if spec.group.isEmpty && memberships[agent] == nil && !now { return }
        if groups[name] == nil {
            let strategy: SupervisionStrategy = switch spec.groupStrategy {
            case .oneForAll: .oneForAll
            case .restForOne: .restForOne
            default: .oneForOne
            }
            groups[name] = try SupervisionGroup(policy: SupervisionPolicy(strategy: strategy, intensity: intensity))
        }
        if !(groups[name]!.children.contains { $0.id == agent }) {
            let restart: MeshSupervision.RestartType = switch spec.restartType {
            case .transient: .transient
            case .temporary: .temporary
            default: .permanent
            }
            try groups[name]!.add(ChildSpec(agent, restart: restart))
        }
        memberships[agent] = name
    }

    private func leaveGroup(_ agent: AgentID) {
        guard let name = memberships.removeValue(forKey: agent), groups[name] != nil else { return }
        _ = groups[name]!.remove(agent)
        if groups[name]!.children.isEmpty { groups[name] = nil }
    }

    private func agentFailed(_ agent: AgentID, reason: String) async {
        guard let spec = specs[agent] else { return }
        let name = groupName(agent, spec)
        events.publish(.agentFailed, agent: agent, reason: reason)
        if groups[name] == nil, spec.group.isEmpty, routing.withLock({ $0.cells[agent] != nil }) { try? joinGroup(agent, spec: spec, now: true) }
        guard groups[name] != nil else { return }
        let decision = groups[name]!.childExited(agent, reason: .failure(reason), at: .now, using: &rng)
        for id in decision.stop {
            if let cell = routing.withLock({ $0.cells[id] }) { await cell.stop(.reject) }
        }
        for id in decision.remove {
            _ = routing.withLock { $0.cells.removeValue(forKey: id) }
            writeStatus(id, spec: specs[id], status: .stopped, error: MeshError(.internalError, decision.reason))
        }
        switch decision.action {
        case .groupFailed:
            // The cells stay routable: a failed or stopped cell answers `unavailable`.
            for child in Set(decision.stop + [agent]) {
                writeStatus(child, spec: specs[child], status: .failed, error: MeshError(.internalError, decision.reason))
            }
            events.publish(.groupFailed, agent: agent, reason: decision.reason, attributes: ["group": name])
            context.logger.warning("supervision group failed", metadata: ["mesh.group": "\(name)", "reason": "\(decision.reason)"])
        case .restart, .start:
            for id in decision.start { writeStatus(id, spec: specs[id], status: .restarting, error: MeshError(.internalError, reason)) }
            let input = inputContinuation
            let ids = decision.start
            let delay = decision.delay
            Task {
                try? await Task.sleep(for: delay)
                input.yield(.restartDue(ids, group: name, reason: decision.reason))
            }
        case .none, .remove:
            break
        }
        updateGauges()
    }

    private func restart(_ agents: [AgentID], group: String, reason: String) async {
        for agent in agents where ownsShard(of: agent) {
            let snapshot = await loadState(agent)
            do {
                if let cell = routing.withLock({ $0.cells[agent] }), cell.phase == .failed {
                    try cell.restart(restoringFrom: snapshot)
                } else {
                    guard let spec = specs[agent] else { continue }
                    let cell = try runtime.makeCell(spec: spec, restoringFrom: snapshot)
                    routing.withLock { $0.cells[agent] = cell }
                }
                restartCounts[agent, default: 0] += 1
                events.publish(.agentRestarted, agent: agent, reason: reason, attributes: ["restarts": "\(restartCounts[agent]!)"])
                writeStatus(agent, spec: specs[agent], status: .running, error: nil)
            } catch {
                await agentFailed(agent, reason: "restart failed: \(error)")
            }
        }
    }

    // MARK: Checkpoints and status

    /// Checkpoints every agent whose state changed since its last checkpoint, up to
    /// ``concurrentCheckpoints`` at once (written one after another, 7 000 changed agents
    /// took more than a second, and a crash lost every change still waiting).
    private func flushCheckpoints() async {
        let ids = dirty.withLock { ids in defer { ids.removeAll() }; return ids }
        let shardMap = resources.shardMap
        await Self.concurrently(ids, limit: Self.concurrentCheckpoints) { id in
            let due = self.routing.withLock { routing -> (AgentCell, UInt64)? in
                guard let cell = routing.cells[id], let epoch = routing.epochs[shardMap.shard(of: id)] else { return nil }
                routing.flushing.insert(id)
                return (cell, epoch)
            }
            guard let (cell, epoch) = due else { return }
            await self.checkpoint(cell, epoch: epoch)
            _ = self.routing.withLock { $0.flushing.remove(id) }
        }
    }

    /// Checkpoint writes in flight at once, in a flush or a hand-over.
    static let concurrentCheckpoints = 256

    /// Runs `body` for every element of `items`, at most `limit` at once.
    private static func concurrently<Items: Sequence>(
        _ items: Items, limit: Int, _ body: @escaping @Sendable (Items.Element) async -> Void
    ) async where Items.Element: Sendable {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for item in items {
                if running == limit {
                    await group.next()
                    running -= 1
                }
                running += 1
                group.addTask { await body(item) }
            }
        }
    }

    /// Writes the cell's changed state, fenced by `epoch` (the shard epoch this node holds,
    /// or held until the hand-over): a checkpoint of a newer owner is never overwritten.
    private func checkpoint(_ cell: AgentCell, epoch: UInt64) async {
        guard cell.needsCheckpoint else { return }
        do {
            let checkpoint = try await cell.checkpoint()
            if let snapshot = checkpoint.state {
                let (checkpoints, agent) = (self.checkpoints!, cell.id)
                let (known, incarnation) = (stateRevisions.withLock { $0[agent] }, cell.incarnation)
                let outcome = try await checkpoints.writePipelined(agent, state: snapshot, epoch: epoch, incarnation: incarnation, knownRevision: known)
                switch outcome {
                case .written(let revision):
                    stateRevisions.withLock { $0[agent] = revision }
                    checkpointsWritten.increment()
                case .fenced(let newer):
                    // This node lost the shard and has not heard yet; the move will come.
                    checkpointsFenced.increment()
                    context.logger.info(
                        "checkpoint refused: a newer shard owner wrote this agent's state",
                        metadata: ["mesh.agent.id": "\(agent)", "mesh.shard.epoch": "\(epoch)", "mesh.shard.epoch.newer": "\(newer)"])
                case .superseded(let later):
                    // This agent was deleted and created again; the delete is on its way here.
                    checkpointsFenced.increment()
                    context.logger.info(
                        "checkpoint refused: the agent was created again since",
                        metadata: ["mesh.agent.id": "\(agent)", "mesh.agent.incarnation": "\(incarnation)", "mesh.agent.incarnation.later": "\(later)"])
                }
            }
            cell.markCheckpointed(version: checkpoint.version)
        } catch {
            _ = dirty.withLock { $0.insert(cell.id) }  // retried on the next flush
            context.logger.debug("checkpoint failed", metadata: ["mesh.agent.id": "\(cell.id)", "error": "\(error)"])
        }
    }

    /// The last checkpoints of `agents`, read together (a shard taken over after a failure
    /// restores all its agents at once, and a burst of creates starts many agents; one read
    /// at a time would add a round trip per agent): batched direct gets, one request per 256
    /// agents. Each agent's revision is remembered for its next checkpoint. When the batched
    /// read fails (a bucket without direct get, say), the checkpoints are read one by one,
    /// ``concurrentStateReads`` at a time. `read`: the checkpoints when the caller read them.
    private func loadStates(_ agents: [AgentID], read: [AgentID: StateCheckpoints.Stored]? = nil) async -> [AgentID: [UInt8]] {
        guard !agents.isEmpty else { return [:] }
        do {
            let stored: [AgentID: StateCheckpoints.Stored]
            if let read { stored = read } else { stored = try await checkpoints.read(agents) }
            var states: [AgentID: [UInt8]] = [:]
            for agent in agents { states[agent] = restoring(agent, from: stored[agent]) }
            return states
        } catch {
            context.logger.debug("batched checkpoint read failed; reading one by one", metadata: ["error": "\(error)"])
        }
        return await withTaskGroup(of: (AgentID, [UInt8]?).self) { group in
            var states: [AgentID: [UInt8]] = [:]
            for (index, agent) in agents.enumerated() {
                if index >= Self.concurrentStateReads, let (done, state) = await group.next() { states[done] = state }
                group.addTask { (agent, await self.loadState(agent)) }
            }
            for await (done, state) in group { states[done] = state }
            return states
        }
    }

    /// Checkpoint reads in flight while a shard is taken over.
    static let concurrentStateReads = 32

    /// The agent's last checkpoint, read off the cooperative pool; its revision is
    /// remembered for the next checkpoint (a failed read leaves it unknown).
    private func loadState(_ agent: AgentID) async -> [UInt8]? {
        let checkpoints = self.checkpoints!
        let read = await BlockingIO.run { () -> Result<StateCheckpoints.Stored?, NatsError> in
            do throws(NatsError) { return .success(try checkpoints.read(agent)) } catch { return .failure(error) }
        }
        guard case .success(let stored) = read else {
            stateRevisions.withLock { $0[agent] = nil }
            return nil
        }
        return restoring(agent, from: stored)
    }

    /// The state the agent restores from its key's checkpoint `stored`: none when that
    /// checkpoint belongs to another life of the id (``StateCheckpoints/restoring(_:incarnation:)``);
    /// remembers the revision its next checkpoint writes over.
    private func restoring(_ agent: AgentID, from stored: StateCheckpoints.Stored?) -> [UInt8]? {
        let incarnation = specs[agent]?.incarnation ?? 0
        let (state, known) = StateCheckpoints.restoring(stored, incarnation: incarnation)
        stateRevisions.withLock { $0[agent] = known }
        if let stored, state == nil {
            checkpointsIgnored.increment()
            context.logger.info(
                "checkpoint of another life of this agent id not restored",
                metadata: ["mesh.agent.id": "\(agent)", "mesh.agent.incarnation": "\(incarnation)", "mesh.agent.incarnation.stored": "\(stored.incarnation)"])
        }
        return state
    }

    /// Writes the agent's status (as of `at`: now unless given) to KV `mesh_status`.
    private func writeStatus(_ agent: AgentID, spec: AgentSpec?, status: AgentStatus, error: MeshError?, at: Date = Date()) {
        let shard = resources.shardMap.shard(of: agent)
        let epoch = routing.withLock { $0.epochs[shard] } ?? 0
        let now = Int64(at.timeIntervalSince1970 * 1000)
        var record = AgentRecord()
        record.spec.id = agent.rawValue
        record.spec.generation = spec?.generation ?? 0
        record.status = status
        record.placement = Placement(nodeId: node.rawValue, shard: UInt32(shard), shardEpoch: epoch)
        record.restartCount = restartCounts[agent] ?? 0
        record.lastError = error?.errorReply
        record.updatedAtUnixMs = now
        record.statusChangedAtUnixMs = now
        if status == .running { record.startedAtUnixMs = now }
        // Without waiting, in the order the control loop decides (publishes on one connection
        // are stored in order; so is the status delete of a removed agent).
        let logger = context.logger
        do {
            try resources.status.putAsync(agent.rawValue, record.serializedBytes()) { result in
                if case .failure(let error) = result {
                    logger.debug("status not written", metadata: ["mesh.agent.id": "\(agent)", "error": "\(error)"])
                }
            }
        } catch {
            logger.debug("status not written", metadata: ["mesh.agent.id": "\(agent)", "error": "\(error)"])
        }
    }

    private func updateGauges() {
        let (shards, agents) = routing.withLock { ($0.epochs.count, $0.cells.count) }
        shardGauge.record(Double(shards))
        agentGauge.record(Double(agents))
    }

    // MARK: Hot path

    /// Handles one action request on the NATS delivery thread.
    func route(_ message: NatsMessage, shard: Int) {
        let started = ContinuousClock.now
        guard message.reply != nil else { return }
        @Sendable func answer(_ result: Result<[UInt8], MeshError>, requestID: String, epoch: UInt64) {
            var reply = ActionReply(requestId: requestID, servedBy: node.rawValue, shardEpoch: epoch)
            switch result {
            case .success(let payload):
                reply.status = .ok
                reply.payload = payload
                actionsServed.increment()
            case .failure(let error):
                reply.status = .error
                reply.error = error.errorReply
                actionsFailed.increment()
            }
            var headers = NatsHeaders()
            headers[MeshHeader.messageType] = ActionReply.messageType.rawValue
            try? context.nats.respond(to: message, payload: reply.serializedBytes(), headers: headers)
            actionLatency.recordNanoseconds((ContinuousClock.now - started).totalNanoseconds)
        }
        let request: ActionRequest
        do { request = try ActionRequest(serializedBytes: message.payload) } catch {
            answer(.failure(MeshError(.invalidArgument, "malformed action request: \(error)")), requestID: "", epoch: 0)
            return
        }
        guard let agent = try? AgentID(request.agentId), message.subject == context.subjects.action(shard: shard, agent: agent) else {
            answer(.failure(MeshError(.invalidArgument, "the request's agent id does not match its subject")), requestID: request.requestId, epoch: 0)
            return
        }
        if leaseLapsed(at: started) {
            let error = MeshError(.unavailable, "node \(node) is reading its shard owners again after a pause", retryAfter: .milliseconds(20))
            answer(.failure(error), requestID: request.requestId, epoch: 0)
            return
        }
        let (epoch, cell, starting) = routing.withLock { ($0.epochs[shard], $0.cells[agent], $0.starting.contains(agent)) }
        guard let epoch else {
            answer(.failure(MeshError(.unavailable, "shard \(shard) is not served here (in transit)", retryAfter: .milliseconds(20))), requestID: request.requestId, epoch: 0)
            return
        }
        if request.shardEpoch != 0 && request.shardEpoch != epoch {
            let error = request.shardEpoch > epoch
                ? MeshError(.unavailable, "shard \(shard) moved (epoch \(request.shardEpoch) > \(epoch))", retryAfter: .milliseconds(20))
                : MeshError(.staleEpoch, "request stamped with epoch \(request.shardEpoch), shard \(shard) is at \(epoch)", retryAfter: .milliseconds(5))
            answer(.failure(error), requestID: request.requestId, epoch: epoch)
            return
        }
        guard let cell else {
            let error = starting
                ? MeshError(.unavailable, "agent \(agent) is starting", retryAfter: .milliseconds(20))
                : MeshError(.notFound, "no agent \(agent)")
            answer(.failure(error), requestID: request.requestId, epoch: epoch)
            return
        }
        let deadline: ContinuousClock.Instant? = request.deadlineUnixMs > 0
            ? started + .milliseconds(request.deadlineUnixMs - Int64(Date().timeIntervalSince1970 * 1000)) : nil
        let requestID = request.requestId
        do {
            try cell.send(request.action, payload: request.payload, deadline: deadline) { result in
                answer(result, requestID: requestID, epoch: epoch)
            }
        } catch {
            answer(.failure(error), requestID: requestID, epoch: epoch)
        }
    }
}

/// Task ids cancelled by operators (from KV `mesh_task_cancel`), bounded: the oldest are
/// forgotten past ``limit`` (their tasks are long over or were checked already).
struct CancelledTasks {
    static let limit = 100_000
    private var ids: Set<String> = []
    private var order: [String] = []
    private var head = 0

    func contains(_ id: String) -> Bool { ids.contains(id) }

    mutating func insert(_ id: String) {
        guard ids.insert(id).inserted else { return }
        order.append(id)
        if ids.count > Self.limit {
            ids.remove(order[head])
            head += 1
            if head > Self.limit { order.removeFirst(head); head = 0 }
        }
    }
}

/// The agents' way to other agents (used by `fanout`): the mesh's action client, and the
/// registry for label selectors.
struct MeshDispatcher: ActionDispatcher {
    let client: ActionClient
    let registry: RegistryClient

    func send(_ action: String, payload: [UInt8], to agent: AgentID, deadline: ContinuousClock.Instant) async throws(MeshError) -> [UInt8] {
        try await client.act(agent, action: action, payload: payload, timeout: max(.milliseconds(1), deadline - .now))
    }

    func agents(matching selector: LabelSelector, limit: Int, deadline: ContinuousClock.Instant) async throws(MeshError) -> [AgentID] {
        let page = try await registry.list(selector: selector.description, limit: max(1, min(limit, RegistryClient.maxLimit)))
        return page.records.compactMap { try? AgentID($0.spec.id) }
    }
}
