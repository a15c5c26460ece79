public import MeshCore

/// One change of a shard's owner, to be written to KV `mesh_shards` with its epoch.
public struct ShardMove: Sendable, Hashable, CustomStringConvertible {
    /// Why a shard moves (the `reason` written with the assignment).
    public typealias Reason = ShardMoveReason

    /// The shard.
    public var shard: Int
    /// The previous owner, `nil` when it had none.
    public var from: NodeID?
    /// The new owner, `nil` when no node can take it (it stays unassigned).
    public var to: NodeID?
    /// The shard's new epoch (fencing token), one more than its previous epoch.
    public var epoch: UInt64
    /// Why it moves.
    public var reason: Reason

    public init(shard: Int, from: NodeID?, to: NodeID?, epoch: UInt64, reason: Reason) {
        self.shard = shard
        self.from = from
        self.to = to
        self.epoch = epoch
        self.reason = reason
    }

    public var description: String {
        "shard \(shard): \(from?.rawValue ?? "-") → \(to?.rawValue ?? "-") (epoch \(epoch), \(reason))"
    }
}

/// The owner and epoch of one shard.
public struct ShardAssignment: Sendable, Hashable {
    /// The owning node, `nil` while unassigned.
    public var owner: NodeID?
    /// The fencing token: increases by one with every move; 0 before the first assignment.
    public var epoch: UInt64

    public init(owner: NodeID? = nil, epoch: UInt64 = 0) {
        self.owner = owner
        self.epoch = epoch
    }
}

/// Shard placement as a pure state machine: node liveness from heartbeats, capacity-weighted
/// rendezvous hashing with bounded loads (see ``Rendezvous``), minimal movement, fencing
/// epochs and anti-flap.
///
/// The planner reads no clock: heartbeats and plans carry the time (the supervisor's
/// monotonic clock). ``plan(now:)`` applies the moves it returns to its own state (epochs
/// included); the caller writes them to KV `mesh_shards` with compare-and-set, and if a write
/// fails (it lost leadership) it throws the planner away and rebuilds one from KV.
///
/// Rules:
/// - A node is dead when it has not sent a heartbeat for `missesAllowed × heartbeatInterval`
///   (default 3 × 250 ms = 750 ms). ``plan(now:)`` expires nodes first, so a dead node's shards
///   move in the same call: call it on every tick (e.g. every 50 ms) for failover well under 1 s.
/// - Candidates are live, not draining nodes with capacity > 0. A candidate is *stable* once it
///   has been alive continuously for its hold-down: `holdDown × 2^k`, capped at `maxHoldDown`,
///   where k is the number of its deaths in the last `flapMemory` (defaults 1 s, 30 s, 60 s). So
///   a node that keeps flapping waits longer and longer and soon gets nothing.
/// - Quotas: each receiving node (the stable candidates, or every candidate while none is
///   stable) holds the floor or the ceiling of its capacity's share of the shards — those not
///   held by live nodes that receive nothing yet (restored owners not heard from, owners within
///   their hold-down). 64 shards over 3 equal nodes are 21, 21 and 22; rendezvous hashing alone
///   gives such nodes anywhere from about 14 to 29, by their names.
/// - A shard whose owner is dead or unknown, draining, or that has no owner, goes at once to a
///   receiver: each to the receiver that scores it highest among those below their lower quota,
///   then among those below their upper one. With no candidate at all, a lost shard moves to
///   `nil` (its epoch still increases, fencing the old owner), the others wait.
/// - A shard owned by a live, non-draining node moves only while some stable node is outside
///   its quota, and only between stable nodes: a node below its lower quota (one that joined)
///   takes shards from nodes above their upper quota, then from nodes above their lower one,
///   those whose owner it outranks most first; a node still above its upper quota gives shards
///   to nodes below theirs, to nodes that joined first. So a death or a drain moves only the
///   lost node's shards, a join moves only shards to the new node (with unequal capacities,
///   rarely one more between old nodes), and a settled placement never moves.
/// - Each call moves a shard at most once.
/// - Capacity is the node's configured weight, not its momentary load: a changed capacity
///   changes the quotas and moves shards.
/// - Owners restored from KV count as alive (heard at the restore time) but get no new
///   shards until their first heartbeat; without one they expire like any node.
///
/// ```swift
/// var planner = try ShardPlanner(shardCount: 64)
/// planner.heartbeat(worker1, capacity: 100, at: now)
/// for move in planner.plan(now: now) {
///     try await shardsKV.update(move)   // owner and epoch, CAS on revision
/// }
/// ```
public struct ShardPlanner: Sendable, Hashable {
    /// Timing of liveness and anti-flap.
    public struct Configuration: Sendable, Hashable {
        /// How often workers heartbeat; default 250 ms.
        public let heartbeatInterval: Duration
        /// Missed heartbeats before a node is dead; default 3.
        public let missesAllowed: Int
        /// How long a (re)appearing node must stay alive before shards move to it; default 1 s.
        public let holdDown: Duration
        /// The largest hold-down of a flapping node; default 30 s.
        public let maxHoldDown: Duration
        /// How long a death counts towards a node's hold-down; default 60 s.
        public let flapMemory: Duration

        /// The defaults: 250 ms heartbeats, dead after 3 misses, hold-down 1 s doubling per
        /// death in the last 60 s up to 30 s.
        public static let standard = try! Configuration()

        /// Silence after which a node is dead: `missesAllowed × heartbeatInterval`.
        public var deadAfter: Duration { heartbeatInterval * missesAllowed }

        /// Silence after which a live node is suspect and may be probed (see
        /// ``ShardPlanner/suspects(now:)``): one and a half heartbeat intervals, or
        /// ``deadAfter`` when that is shorter.
        public var suspectAfter: Duration { min(heartbeatInterval * 3 / 2, deadAfter) }

        /// - Throws: ``MeshError`` `invalid_argument` for a non-positive interval or miss count,
        ///   a negative hold-down, `maxHoldDown < holdDown` or a negative flap memory.
        public init(
            heartbeatInterval: Duration = .milliseconds(250), missesAllowed: Int = 3, holdDown: Duration = .seconds(1),
            maxHoldDown: Duration = .seconds(30), flapMemory: Duration = .seconds(60)
        ) throws(MeshError) {
            guard heartbeatInterval > .zero, missesAllowed > 0 else {
                throw MeshError(
                    .invalidArgument,
                    "heartbeat interval and misses allowed must be positive, got \(heartbeatInterval) and \(missesAllowed)")
            }
            guard holdDown >= .zero, maxHoldDown >= holdDown, flapMemory >= .zero else {
                throw MeshError(
                    .invalidArgument,
                    "need 0 <= holdDown <= maxHoldDown and flapMemory >= 0, got \(holdDown), \(maxHoldDown), \(flapMemory)")
            }
            self.heartbeatInterval = heartbeatInterval
            self.missesAllowed = missesAllowed
            self.holdDown = holdDown
            self.maxHoldDown = maxHoldDown
            self.flapMemory = flapMemory
        }
    }

    /// What the planner knows of one node.
    public struct Node: Sendable, Hashable {
        /// The capacity (weight) from its last heartbeat; 0 or less gets no shards.
        public var capacity: Double
        /// Whether it asked to be drained.
        public var draining: Bool
        /// The time of its latest heartbeat.
        public var lastHeartbeat: ContinuousClock.Instant
        /// When its current continuous life began.
        public var aliveSince: ContinuousClock.Instant
        /// `false` once it missed too many heartbeats, until it heartbeats again.
        public var isAlive: Bool
        /// Restored from KV and not heard from yet.
        public var isProvisional: Bool
        /// When it was declared dead, within the flap memory, oldest first.
        public var deaths: [ContinuousClock.Instant]
    }

    /// The number of shards.
    public let shardCount: Int
    /// The timing rules.
    public let configuration: Configuration
    /// The node table.
    public private(set) var nodes: [NodeID: Node] = [:]
    /// Owner and epoch per shard, indexed by shard.
    public private(set) var assignments: [ShardAssignment]
    /// The stable candidates at the previous plan, to tell a join from a rebalance.
    private var stableAtLastPlan: Set<NodeID> = []

    /// Deaths remembered per node (enough for any hold-down doubling).
    private static let maxDeathsRemembered = 64

    /// - Parameters:
    ///   - shardCount: the cluster's shard count (default 64).
    ///   - configuration: liveness and anti-flap timing.
    ///   - assignments: the current assignments from KV, one per shard, or `nil` for a new cluster.
    ///   - restoredAt: the time the assignments were read; their owners count as heard then.
    /// - Throws: ``MeshError`` `invalid_argument` for a shard count outside `1...65536` or
    ///   assignments of the wrong length.
    public init(
        shardCount: Int = ShardMap.defaultShardCount, configuration: Configuration = .standard,
        assignments: [ShardAssignment]? = nil, restoredAt: ContinuousClock.Instant? = nil
    ) throws(MeshError) {
        _ = try ShardMap(shardCount: shardCount)
        self.shardCount = shardCount
        self.configuration = configuration
        guard let assignments else {
            self.assignments = Array(repeating: ShardAssignment(), count: shardCount)
            return
        }
        guard assignments.count == shardCount else {
            throw MeshError(.invalidArgument, "expected \(shardCount) shard assignments, got \(assignments.count)")
        }
        guard let restoredAt else {
            throw MeshError(.invalidArgument, "restored assignments need the time they were read")
        }
        self.assignments = assignments
        for owner in Set(assignments.compactMap(\.owner)) {
            nodes[owner] = Node(
                capacity: 0, draining: false, lastHeartbeat: restoredAt, aliveSince: restoredAt, isAlive: true,
                isProvisional: true, deaths: [])
        }
    }

    // MARK: Node table

    /// Records a heartbeat. A new or dead node becomes alive from `at` (its hold-down starts);
    /// a heartbeat older than the latest one seen is ignored.
    /// - Parameters:
    ///   - node: the worker.
    ///   - capacity: its weight (e.g. configured agent slots); not finite or negative counts as 0.
    ///   - draining: whether it asked to be drained.
    ///   - at: when the heartbeat was received.
    public mutating func heartbeat(_ node: NodeID, capacity: Double, draining: Bool = false, at: ContinuousClock.Instant) {
        let weight = capacity.isFinite && capacity > 0 ? capacity : 0
        guard var state = nodes[node] else {
            nodes[node] = Node(
                capacity: weight, draining: draining, lastHeartbeat: at, aliveSince: at, isAlive: true,
                isProvisional: false, deaths: [])
            return
        }
        if state.isAlive && state.isProvisional {
            state.isProvisional = false
        } else if at < state.lastHeartbeat {
            return
        }
        if !state.isAlive {
            state.isAlive = true
            state.aliveSince = at
        }
        state.lastHeartbeat = max(state.lastHeartbeat, at)
        state.capacity = weight
        state.draining = draining
        nodes[node] = state
    }

    /// Sets or clears a node's drain without waiting for its next heartbeat (an operator's
    /// drain). Later heartbeats set the flag again from what the caller passes them.
    /// - Returns: `false` when the node is unknown.
    @discardableResult
    public mutating func setDraining(_ node: NodeID, _ draining: Bool) -> Bool {
        guard nodes[node] != nil else { return false }
        nodes[node]!.draining = draining
        return true
    }

    /// Whether `node` can receive shards now or after its hold-down: alive, heard from, not
    /// draining, capacity > 0.
    public func isCandidate(_ node: NodeID) -> Bool { nodes[node].map(Self.isCandidate) ?? false }

    /// Declares a node dead at once (e.g. it announced its exit). It counts as a death for
    /// its hold-down, like an expiry.
    public mutating func markDead(_ node: NodeID, at now: ContinuousClock.Instant) {
        guard var state = nodes[node], state.isAlive else { return }
        state.isAlive = false
        state.isProvisional = false
        state.deaths.append(now)
        if state.deaths.count > Self.maxDeathsRemembered { state.deaths.removeFirst() }
        nodes[node] = state
    }

    /// The live nodes silent for ``Configuration/suspectAfter`` or longer, sorted:
    /// candidates for a liveness probe.
    public func suspects(now: ContinuousClock.Instant) -> [NodeID] {
        nodes.filter { $0.value.isAlive && now - $0.value.lastHeartbeat >= configuration.suspectAfter }.keys.sorted()
    }

    /// Declares `node` dead on a probe's evidence (nothing was listening on its probe subject
    /// at `probedAt`), unless a heartbeat arrived at or after `probedAt`: a node that
    /// came back meanwhile stays alive. Counts as a death for the hold-down, like an expiry.
    /// - Returns: whether the node died now.
    @discardableResult
    public mutating func confirmDead(_ node: NodeID, probedAt: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Bool {
        guard let state = nodes[node], state.isAlive, state.lastHeartbeat < probedAt else { return false }
        markDead(node, at: now)
        return true
    }

    /// Marks dead every live node silent for ``Configuration/deadAfter`` or longer, and forgets
    /// dead nodes that own nothing and have no death within the flap memory.
    /// - Returns: the nodes that died now, sorted.
    @discardableResult
    public mutating func expire(now: ContinuousClock.Instant) -> [NodeID] {
        var died: [NodeID] = []
        for (id, state) in nodes where state.isAlive && now - state.lastHeartbeat >= configuration.deadAfter {
            markDead(id, at: now)
            died.append(id)
        }
        let owners = Set(assignments.compactMap(\.owner))
        for (id, var state) in nodes where !state.isAlive {
            state.deaths.removeAll { now - $0 > configuration.flapMemory }
            if state.deaths.isEmpty && !owners.contains(id) {
                nodes[id] = nil
            } else {
                nodes[id] = state
            }
        }
        return died.sorted()
    }

    /// The hold-down of `node` at `now`: `holdDown × 2^(deaths in flapMemory)`, capped.
    public func holdDown(of node: NodeID, now: ContinuousClock.Instant) -> Duration {
        let base = configuration.holdDown
        let deaths = nodes[node]?.deaths.count { now - $0 <= configuration.flapMemory } ?? 0
        var hold = base
        for _ in 0..<deaths where hold < configuration.maxHoldDown { hold *= 2 }
        return min(hold, configuration.maxHoldDown)
    }

    /// Whether `node` may receive shards now: alive, not draining, capacity > 0, heard from,
    /// and alive for at least its hold-down.
    public func isStable(_ node: NodeID, now: ContinuousClock.Instant) -> Bool {
        guard let state = nodes[node], Self.isCandidate(state) else { return false }
        return now - state.aliveSince >= holdDown(of: node, now: now)
    }

    /// The live nodes, sorted.
    public var liveNodes: [NodeID] { nodes.filter { $0.value.isAlive }.keys.sorted() }

    /// The owner of `shard`, `nil` while unassigned.
    public func owner(of shard: Int) -> NodeID? { assignments[shard].owner }

    /// The shards owned by `node`, ascending.
    public func shards(ownedBy node: NodeID) -> [Int] { assignments.indices.filter { assignments[$0].owner == node } }

    // MARK: Planning

    /// Expires silent nodes, computes the moves needed now, applies them (owner and a new
    /// epoch per moved shard) and returns them in shard order. A shard moves at most once
    /// per call.
    /// - Parameter now: the current time of the supervisor's monotonic clock.
    /// - Returns: the moves to write to KV; empty when the placement is settled.
    public mutating func plan(now: ContinuousClock.Instant) -> [ShardMove] {
        expire(now: now)
        let candidates = nodes.filter { Self.isCandidate($0.value) }
            .map { Receiver(id: $0.key, weight: $0.value.capacity, hash: ShardMap.fnv1a64($0.key.rawValue)) }
            .sorted { $0.id < $1.id }
        let stable = candidates.filter { isStable($0.id, now: now) }
        let stableIDs = Set(stable.map(\.id))
        let joined = stableIDs.subtracting(stableAtLastPlan)
        stableAtLastPlan = stableIDs
        // Shards without a live, eligible owner go to the stable candidates, or to any
        // candidate while none is stable; owned shards move between stable nodes only.
        let receivers = stable.isEmpty ? candidates : stable

        var owners = assignments.map(\.owner)
        var reasons: [Int: ShardMove.Reason] = [:]
        // Shards that must move, and why.
        var homeless: [Int: ShardMove.Reason] = [:]
        for shard in assignments.indices {
            guard let owner = owners[shard] else {
                homeless[shard] = .initial
                continue
            }
            guard let state = nodes[owner], state.isAlive else {
                homeless[shard] = .nodeLost
                continue
            }
            if !state.isProvisional && (state.draining || state.capacity <= 0) { homeless[shard] = .drain }
        }
        guard !receivers.isEmpty else {
            // Nobody can take a shard: a lost shard is fenced off to nobody, the rest waits.
            for (shard, reason) in homeless where reason == .nodeLost {
                owners[shard] = nil
                reasons[shard] = reason
            }
            return apply(owners, reasons)
        }

        // The receivers' quotas: the shards they may hold (all but those of live owners that
        // are not receivers — provisional, or within their hold-down) split by capacity.
        let index = Dictionary(uniqueKeysWithValues: receivers.enumerated().map { ($1.id, $0) })
        var load = Array(repeating: 0, count: receivers.count)
        var held = 0
        for shard in assignments.indices where homeless[shard] == nil {
            if let owner = owners[shard], let slot = index[owner] { load[slot] += 1 } else { held += 1 }
        }
        let quotas = Self.quotas(shards: shardCount - held, weights: receivers.map(\.weight))

        // 1. Homeless shards, best score first: up to each receiver's lower quota, then its upper.
        for bound in [\Quota.lower, \Quota.upper] {
            var pairs: [(score: Double, shard: Int, slot: Int)] = []
            for shard in homeless.keys where reasons[shard] == nil {
                for slot in receivers.indices where load[slot] < quotas[slot][keyPath: bound] {
                    pairs.append((Self.score(shard, receivers[slot]), shard, slot))
                }
            }
            pairs.sort { $0.score != $1.score ? $0.score > $1.score : ($0.shard, $0.slot) < ($1.shard, $1.slot) }
            for pair in pairs where reasons[pair.shard] == nil && load[pair.slot] < quotas[pair.slot][keyPath: bound] {
                owners[pair.shard] = receivers[pair.slot].id
                load[pair.slot] += 1
                reasons[pair.shard] = homeless[pair.shard]
            }
        }
        guard stable == receivers else { return apply(owners, reasons) }

        // 2. A stable node below its lower quota takes shards: from nodes above their upper
        //    quota first, then from nodes above their lower; those whose owner it outranks
        //    most first (so a joining node takes what it wins, and the others shed evenly).
        func rebalance(to slot: Int, from shard: Int) {
            let from = index[owners[shard]!]!
            load[from] -= 1
            load[slot] += 1
            owners[shard] = receivers[slot].id
            reasons[shard] = joined.contains(receivers[slot].id) ? .nodeJoined : .rebalance
        }
        for slot in receivers.indices where load[slot] < quotas[slot].lower {
            var offers: [(preference: Double, shard: Int)] = []
            for shard in assignments.indices where reasons[shard] == nil {
                guard let owner = owners[shard], let from = index[owner], from != slot else { continue }
                offers.append((Self.score(shard, receivers[slot]) / Self.score(shard, receivers[from]), shard))
            }
            offers.sort { $0.preference != $1.preference ? $0.preference > $1.preference : $0.shard < $1.shard }
            for bound in [\Quota.upper, \Quota.lower] {
                for offer in offers where load[slot] < quotas[slot].lower && reasons[offer.shard] == nil {
                    let from = index[owners[offer.shard]!]!
                    if load[from] > quotas[from][keyPath: bound] { rebalance(to: slot, from: offer.shard) }
                }
            }
        }
        // 3. A stable node above its upper quota gives shards to nodes below theirs: to nodes
        //    that joined now first, then to any; those whose taker outranks it most first.
        let joiners = receivers.indices.filter { joined.contains(receivers[$0].id) }
        for takers in [joiners, Array(receivers.indices)] {
            for from in receivers.indices where load[from] > quotas[from].upper {
                var offers: [(preference: Double, shard: Int, slot: Int)] = []
                for shard in assignments.indices where reasons[shard] == nil && owners[shard] == receivers[from].id {
                    let own = Self.score(shard, receivers[from])
                    for slot in takers where slot != from && load[slot] < quotas[slot].upper {
                        offers.append((Self.score(shard, receivers[slot]) / own, shard, slot))
                    }
                }
                offers.sort { $0.preference != $1.preference ? $0.preference > $1.preference : ($0.shard, $0.slot) < ($1.shard, $1.slot) }
                for offer in offers
                where load[from] > quotas[from].upper && reasons[offer.shard] == nil && load[offer.slot] < quotas[offer.slot].upper {
                    rebalance(to: offer.slot, from: offer.shard)
                }
            }
        }
        return apply(owners, reasons)
    }

    /// A receiving node in one plan.
    private struct Receiver: Sendable, Equatable {
        var id: NodeID
        var weight: Double
        var hash: UInt64
    }

    /// The bounds of one node's shard count: the floor and the ceiling of its share.
    struct Quota: Sendable, Hashable {
        var lower: Int
        var upper: Int
    }

    /// Each weight's share of `shards`, as the floor and ceiling of `shards × weight ÷ Σ
    /// weights` (a share within 10⁻⁹ of a whole number is that number).
    static func quotas(shards: Int, weights: [Double]) -> [Quota] {
        let total = weights.reduce(0, +)
        return weights.map { weight in
            var share = Double(shards) * weight / total
            if abs(share - share.rounded()) < 1e-9 { share = share.rounded() }
            return Quota(lower: Int(share.rounded(.down)), upper: Int(share.rounded(.up)))
        }
    }

    private static func score(_ shard: Int, _ node: Receiver) -> Double {
        Rendezvous.score(hash: Rendezvous.hash(shard: shard, nodeHash: node.hash), weight: node.weight)
    }

    /// Applies the owners that changed (one new epoch each) and returns their moves in shard order.
    private mutating func apply(_ owners: [NodeID?], _ reasons: [Int: ShardMove.Reason]) -> [ShardMove] {
        var moves: [ShardMove] = []
        for shard in reasons.keys.sorted() where owners[shard] != assignments[shard].owner {
            let current = assignments[shard]
            let move = ShardMove(shard: shard, from: current.owner, to: owners[shard], epoch: current.epoch + 1, reason: reasons[shard]!)
            assignments[shard] = ShardAssignment(owner: owners[shard], epoch: move.epoch)
            moves.append(move)
        }
        return moves
    }

    private static func isCandidate(_ state: Node) -> Bool {
        state.isAlive && !state.isProvisional && !state.draining && state.capacity > 0
    }
}
