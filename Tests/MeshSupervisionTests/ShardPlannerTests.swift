import MeshCore
import Testing
@testable import MeshSupervision

@Suite struct ShardPlannerTests {
    let w1 = node("worker-1"), w2 = node("worker-2"), w3 = node("worker-3"), w4 = node("worker-4")

    /// Heartbeats every 250 ms from `nodes` over `from..<to` (ms), planning after each round.
    func run(
        _ planner: inout ShardPlanner, _ nodes: [NodeID], from: Int, to: Int, capacity: Double = 100,
        draining: Set<NodeID> = []
    ) -> [ShardMove] {
        var moves: [ShardMove] = []
        for time in stride(from: from, to: to, by: 250) {
            for id in nodes { planner.heartbeat(id, capacity: capacity, draining: draining.contains(id), at: at(ms(time))) }
            moves += planner.plan(now: at(ms(time)))
        }
        return moves
    }

    func counts(_ planner: ShardPlanner) -> [NodeID: Int] {
        planner.assignments.reduce(into: [:]) { $0[$1.owner!, default: 0] += 1 }
    }

    /// Three stable equal workers, after 2 s.
    func threeWorkers() throws -> ShardPlanner {
        var planner = try ShardPlanner()
        _ = run(&planner, [w1, w2, w3], from: 0, to: 2000)
        return planner
    }

    @Test func sixtyFourShardsSpreadEvenlyOverThreeEqualNodes() throws {
        var planner = try ShardPlanner()
        for id in [w1, w2, w3] { planner.heartbeat(id, capacity: 100, at: at(.zero)) }
        let moves = planner.plan(now: at(.zero))
        #expect(moves.count == 64)
        #expect(moves.allSatisfy { $0.reason == .initial && $0.from == nil && $0.epoch == 1 })
        let owned = counts(planner)
        #expect(owned.values.reduce(0, +) == 64)
        for id in [w1, w2, w3] { #expect((21...22).contains(owned[id, default: 0]), "\(id) owns \(owned[id, default: 0])") }
        // Stable later: nothing moves.
        #expect(run(&planner, [w1, w2, w3], from: 250, to: 3000).isEmpty)
    }

    @Test func everyClusterIsSpreadWithinOneShardOfItsShare() throws {
        // Rendezvous alone gives 3 nodes anything from about 14 to 29 of 64 shards, depending
        // on their names; the quotas hold each to the floor or the ceiling of its share.
        var generator = SeededGenerator(seed: 7)
        for cluster in 0..<200 {
            let size = 2 + cluster % 7
            let ids = (0..<size).map { node("node-\(generator.next() % 1_000_000)-\($0)") }
            var planner = try ShardPlanner()
            for id in ids { planner.heartbeat(id, capacity: 1, at: at(.zero)) }
            _ = planner.plan(now: at(.zero))
            let owned = counts(planner)
            #expect(owned.values.reduce(0, +) == 64)
            for id in ids { #expect(64 / size...(64 + size - 1) / size ~= owned[id, default: 0], "\(ids): \(owned)") }
        }
    }

    @Test(arguments: [64, 100, 256])
    func withEqualCapacitiesAJoinMovesShardsOnlyToTheNewNode(shardCount: Int) throws {
        for size in 1...12 {
            let ids = (0...size).map { node("n-\(size)-\($0)") }
            var planner = try ShardPlanner(shardCount: shardCount)
            _ = run(&planner, Array(ids.dropLast()), from: 0, to: 2000)
            let moves = run(&planner, ids, from: 2000, to: 4000)
            #expect(moves.allSatisfy { $0.to == ids.last && $0.reason == .nodeJoined }, "\(size) + 1 nodes: \(moves)")
            #expect(moves.count == shardCount / (size + 1), "\(size) + 1 nodes")
        }
    }

    @Test func quotasSplitShardsByWeightIntoFloorsAndCeilings() {
        let even = ShardPlanner.quotas(shards: 64, weights: [1, 1, 1, 1])
        #expect(even.allSatisfy { $0.lower == 16 && $0.upper == 16 })
        let thirds = ShardPlanner.quotas(shards: 64, weights: [100, 100, 100])
        #expect(thirds.allSatisfy { $0.lower == 21 && $0.upper == 22 })
        let weighted = ShardPlanner.quotas(shards: 64, weights: [200, 100, 100])
        #expect(weighted.map(\.lower) == [32, 16, 16] && weighted.map(\.upper) == [32, 16, 16])
        // Shares that are whole numbers only up to rounding are whole.
        let tenths = ShardPlanner.quotas(shards: 10, weights: [0.1, 0.2, 0.7])
        #expect(tenths.map(\.lower) == [1, 2, 7] && tenths.map(\.upper) == [1, 2, 7])
        for quotas in [even, thirds, weighted, ShardPlanner.quotas(shards: 64, weights: [3, 5, 7, 11])] {
            #expect(quotas.map(\.lower).reduce(0, +) <= 64 && quotas.map(\.upper).reduce(0, +) >= 64)
            #expect(quotas.allSatisfy { $0.upper - $0.lower <= 1 })
        }
    }

    @Test func aJoiningNodeTakesAQuarterAndOnlyShardsMoveToIt() throws {
        var planner = try threeWorkers()
        let before = planner.assignments
        // Within the hold-down nothing moves to the new node.
        #expect(run(&planner, [w1, w2, w3, w4], from: 2000, to: 3000).isEmpty)
        let moves = run(&planner, [w1, w2, w3, w4], from: 3000, to: 4000)
        // Exactly its share, and nothing but that: every node ends with 16.
        #expect(moves.count == 16, "moved \(moves.count)")
        #expect(counts(planner) == [w1: 16, w2: 16, w3: 16, w4: 16])
        #expect(moves.allSatisfy { $0.to == w4 && $0.reason == .nodeJoined })
        for move in moves {
            #expect(move.from == before[move.shard].owner)
            #expect(move.epoch == before[move.shard].epoch + 1)
        }
        let moved = Set(moves.map(\.shard))
        for shard in 0..<64 where !moved.contains(shard) { #expect(planner.assignments[shard] == before[shard]) }
        // It takes first the shards it outranks their owner on.
        let outranked = moves.count { move in
            Rendezvous.score(shard: move.shard, node: w4, weight: 100) > Rendezvous.score(shard: move.shard, node: move.from!, weight: 100)
        }
        let wins = (0..<64).count { shard in
            Rendezvous.score(shard: shard, node: w4, weight: 100) > Rendezvous.score(shard: shard, node: before[shard].owner!, weight: 100)
        }
        #expect(outranked >= min(wins, 16) - 3, "\(outranked) of \(moves.count) moves go to the node that outranks their owner; it outranks \(wins)")
        #expect(run(&planner, [w1, w2, w3, w4], from: 4000, to: 6000).isEmpty)
    }

    @Test func aLostNodesShardsAndOnlyThoseMoveWithinOneSecond() throws {
        var planner = try threeWorkers()
        _ = run(&planner, [w1, w2, w3, w4], from: 2000, to: 4000)
        let before = planner.assignments
        let lost = Set(planner.shards(ownedBy: w2))
        // w2's last heartbeat is at 3750 ms; the others go on.
        #expect(run(&planner, [w1, w3, w4], from: 4000, to: 4500).isEmpty)  // silent 250 and 500 ms: alive
        let moves = run(&planner, [w1, w3, w4], from: 4500, to: 4750)  // silent 750 ms: dead, moved at once
        #expect(Set(moves.map(\.shard)) == lost)
        #expect(moves.allSatisfy { $0.from == w2 && $0.reason == .nodeLost && $0.to != nil && $0.to != w2 })
        for shard in 0..<64 where !lost.contains(shard) { #expect(planner.assignments[shard] == before[shard]) }
        // The survivors end within one shard of a third each.
        #expect(counts(planner).values.sorted() == [21, 21, 22])
        #expect(planner.liveNodes == [w1, w3, w4])
    }

    @Test func deathIsDetectedAfterMissesTimesInterval() throws {
        var planner = try ShardPlanner()
        planner.heartbeat(w1, capacity: 1, at: at(.zero))
        planner.heartbeat(w2, capacity: 1, at: at(.zero))
        _ = planner.plan(now: at(.zero))
        planner.heartbeat(w2, capacity: 1, at: at(ms(700)))
        #expect(planner.expire(now: at(ms(749))).isEmpty)
        #expect(planner.expire(now: at(ms(750))) == [w1])
        let moves = planner.plan(now: at(ms(750)))
        #expect(!moves.isEmpty && moves.allSatisfy { $0.from == w1 && $0.to == w2 })
        #expect(planner.shards(ownedBy: w2).count == 64)
        let custom = try ShardPlanner.Configuration(heartbeatInterval: ms(100), missesAllowed: 5)
        #expect(custom.deadAfter == ms(500))
    }

    @Test func aSilentNodeIsSuspectAfterOneAndAHalfIntervalsAndAProbeConfirmsItsDeath() throws {
        var planner = try ShardPlanner()
        planner.heartbeat(w1, capacity: 1, at: at(.zero))
        planner.heartbeat(w2, capacity: 1, at: at(.zero))
        _ = planner.plan(now: at(.zero))
        #expect(planner.configuration.suspectAfter == ms(375))
        planner.heartbeat(w2, capacity: 1, at: at(ms(250)))
        #expect(planner.suspects(now: at(ms(374))).isEmpty)
        #expect(planner.suspects(now: at(ms(375))) == [w1])
        #expect(planner.suspects(now: at(ms(625))) == [w1, w2])
        // A probe sent before w1's latest heartbeat proves nothing: w1 came back meanwhile.
        planner.heartbeat(w1, capacity: 1, at: at(ms(400)))
        let cameBack = planner.confirmDead(w1, probedAt: at(ms(390)), now: at(ms(420)))
        #expect(!cameBack)
        #expect(planner.liveNodes == [w1, w2])
        // Nothing answered a probe sent after w2's last heartbeat: dead at once, shards move.
        let died = planner.confirmDead(w2, probedAt: at(ms(400)), now: at(ms(420)))
        let diedAgain = planner.confirmDead(w2, probedAt: at(ms(400)), now: at(ms(420)))
        #expect(died)
        #expect(!diedAgain, "already dead")
        #expect(planner.liveNodes == [w1])
        let moves = planner.plan(now: at(ms(420)))
        #expect(!moves.isEmpty && moves.allSatisfy { $0.from == w2 && $0.to == w1 && $0.reason == .nodeLost })
        #expect(planner.shards(ownedBy: w1).count == 64)
        // The death counts for the hold-down like an expiry.
        #expect(planner.holdDown(of: w2, now: at(ms(500))) == .seconds(2))
        #expect(planner.suspects(now: at(ms(500))).isEmpty, "a dead node is no longer suspect")
        // With one allowed miss, a node is suspect exactly when it is dead.
        let strict = try ShardPlanner.Configuration(heartbeatInterval: ms(100), missesAllowed: 1)
        #expect(strict.suspectAfter == ms(100))
    }

    @Test func capacityWeightsAreHonoured() throws {
        var planner = try ShardPlanner()
        planner.heartbeat(w1, capacity: 200, at: at(.zero))
        planner.heartbeat(w2, capacity: 100, at: at(.zero))
        planner.heartbeat(w3, capacity: 100, at: at(.zero))
        _ = planner.plan(now: at(.zero))
        let owned = counts(planner)
        #expect(owned == [w1: 32, w2: 16, w3: 16], "\(owned)")

        var large = try ShardPlanner(shardCount: 8192)
        large.heartbeat(w1, capacity: 200, at: at(.zero))
        large.heartbeat(w2, capacity: 100, at: at(.zero))
        large.heartbeat(w3, capacity: 100, at: at(.zero))
        _ = large.plan(now: at(.zero))
        #expect(large.shards(ownedBy: w1).count == 4096 && large.shards(ownedBy: w2).count == 2048)
        #expect(Rendezvous.winner(shard: 1, among: [(w1, 0), (w2, -1)]) == nil)
    }

    @Test func placementIsDeterministic() throws {
        var first = try ShardPlanner()
        var second = try ShardPlanner()
        for id in [w1, w2, w3, w4] { first.heartbeat(id, capacity: 100, at: at(.zero)) }
        for id in [w4, w3, w2, w1] { second.heartbeat(id, capacity: 100, at: at(.zero)) }
        #expect(first.plan(now: at(.zero)) == second.plan(now: at(.zero)))
        #expect(first.assignments == second.assignments)
        #expect(Rendezvous.hash(shard: 5, node: w1) == Rendezvous.hash(shard: 5, node: w1))
        #expect(Rendezvous.hash(shard: 5, node: w1) != Rendezvous.hash(shard: 6, node: w1))
        // The mixer is the splitmix64 finaliser: its first output for seed 0.
        #expect(Rendezvous.mix64(0x9e37_79b9_7f4a_7c15) == 0xe220_a839_7b1d_cdaf)
    }

    @Test func epochsStrictlyIncreasePerShard() throws {
        var planner = try ShardPlanner()
        var last = Array(repeating: UInt64(0), count: 64)
        var all: [ShardMove] = []
        all += run(&planner, [w1], from: 0, to: 1500)
        all += run(&planner, [w1, w2, w3], from: 1500, to: 3000)
        all += run(&planner, [w1, w3], from: 3000, to: 4500)
        all += run(&planner, [w1, w3, w4], from: 4500, to: 7000)
        #expect(Set(all.map(\.reason)) == [.initial, .nodeJoined, .nodeLost])
        for move in all {
            #expect(move.epoch == last[move.shard] + 1)
            last[move.shard] = move.epoch
        }
        #expect(planner.assignments.map(\.epoch) == last)
    }

    @Test func drainMovesEverythingOffAndGivesNothing() throws {
        var planner = try threeWorkers()
        let before = planner.assignments
        let drained = Set(planner.shards(ownedBy: w3))
        let moves = run(&planner, [w1, w2, w3], from: 2000, to: 4000, draining: [w3])
        #expect(Set(moves.map(\.shard)) == drained)
        #expect(moves.allSatisfy { $0.from == w3 && $0.reason == .drain && ($0.to == w1 || $0.to == w2) })
        #expect(planner.shards(ownedBy: w3).isEmpty)
        for shard in 0..<64 where !drained.contains(shard) { #expect(planner.assignments[shard] == before[shard]) }
        // w1 dies while w3 drains: nothing of w1 goes to w3.
        let lost = run(&planner, [w2, w3], from: 4000, to: 5000, draining: [w3])
        #expect(!lost.isEmpty && lost.allSatisfy { $0.to == w2 })
        #expect(planner.shards(ownedBy: w2).count == 64)
        // Undrained, it is eligible again and wins its shards back.
        let back = run(&planner, [w2, w3], from: 5000, to: 5500)
        #expect(!back.isEmpty && back.allSatisfy { $0.from == w2 && $0.to == w3 && $0.reason == .nodeJoined })
    }

    @Test func anOperatorDrainTakesEffectAtOnceAndCountsCandidates() throws {
        var planner = try threeWorkers()
        let drained = Set(planner.shards(ownedBy: w3))
        #expect(planner.isCandidate(w3) && planner.isCandidate(w1))
        let known = planner.setDraining(w3, true)
        let unknown = planner.setDraining(w4, true)
        #expect(known && !unknown, "an unknown node cannot be drained")
        #expect(!planner.isCandidate(w3) && !planner.isCandidate(w4))
        // No heartbeat in between: the very next plan moves the drained node's shards.
        let moves = planner.plan(now: at(ms(2000)))
        #expect(Set(moves.map(\.shard)) == drained && moves.allSatisfy { $0.reason == .drain })
        let undrained = planner.setDraining(w3, false)
        #expect(undrained && planner.isCandidate(w3))
    }

    @Test func aDrainingLastNodeKeepsItsShards() throws {
        var planner = try ShardPlanner()
        _ = run(&planner, [w1], from: 0, to: 500)
        #expect(run(&planner, [w1], from: 500, to: 2000, draining: [w1]).isEmpty)
        #expect(planner.shards(ownedBy: w1).count == 64)
    }

    @Test func holdDownKeepsShardsFromAJustJoinedNodeUntilItIsStable() throws {
        var planner = try threeWorkers()
        planner.heartbeat(w4, capacity: 100, at: at(ms(2000)))
        #expect(!planner.isStable(w4, now: at(ms(2999))))
        #expect(run(&planner, [w1, w2, w3, w4], from: 2000, to: 2999).isEmpty)
        #expect(planner.isStable(w4, now: at(ms(3000))))
        // A gap longer than deadAfter restarts the hold-down, doubled by the death.
        #expect(!run(&planner, [w1, w2, w3, w4], from: 3000, to: 3250).isEmpty)
        _ = run(&planner, [w1, w2, w3], from: 3250, to: 4250)
        #expect(planner.shards(ownedBy: w4).isEmpty)
        #expect(planner.holdDown(of: w4, now: at(ms(4250))) == .seconds(2))
        #expect(run(&planner, [w1, w2, w3, w4], from: 4250, to: 6250).isEmpty)
        #expect(!run(&planner, [w1, w2, w3, w4], from: 6250, to: 6500).isEmpty)
    }

    @Test func aFlappingNodeDoesNotMakeShardsBounce() throws {
        var planner = try threeWorkers()
        var movesToW4 = 0
        var movesFromW4 = 0
        var moved: [Int] = []
        var time = 2000
        for _ in 0..<12 {
            // Alive for 1.5 s, then silent for 1 s.
            let up = run(&planner, [w1, w2, w3, w4], from: time, to: time + 1500)
            let down = run(&planner, [w1, w2, w3], from: time + 1500, to: time + 2500)
            movesToW4 += (up + down).count { $0.to == w4 }
            movesFromW4 += (up + down).count { $0.from == w4 }
            moved.append((up + down).count)
            time += 2500
        }
        // Only the first cycle moves shards (to w4 once, away once); later hold-downs
        // (2 s, 4 s, ...) are longer than its lives.
        #expect(moved.dropFirst().allSatisfy { $0 == 0 }, "\(moved)")
        #expect(movesToW4 == movesFromW4 && movesToW4 > 0 && movesToW4 <= 22)
        #expect(planner.holdDown(of: w4, now: at(ms(time))) == .seconds(30))
    }

    @Test func flapMemoryForgetsOldDeaths() throws {
        let configuration = try ShardPlanner.Configuration(flapMemory: .seconds(10))
        var planner = try ShardPlanner(configuration: configuration)
        _ = run(&planner, [w1, w2], from: 0, to: 1000)
        _ = run(&planner, [w1], from: 1000, to: 2000)
        #expect(planner.holdDown(of: w2, now: at(ms(2000))) == .seconds(2))
        #expect(planner.holdDown(of: w2, now: at(ms(12_000))) == .seconds(1))
        _ = run(&planner, [w1], from: 2000, to: 13_000)
        #expect(planner.nodes[w2] == nil)  // forgotten: dead, owns nothing, no recent death
    }

    @Test func withoutNodesShardsStayUnassignedUntilOneAppears() throws {
        var planner = try ShardPlanner()
        #expect(planner.plan(now: at(.zero)).isEmpty)
        #expect(planner.assignments.allSatisfy { $0.owner == nil && $0.epoch == 0 })
        planner.heartbeat(w1, capacity: 100, at: at(ms(100)))
        let moves = planner.plan(now: at(ms(100)))
        #expect(moves.count == 64 && moves.allSatisfy { $0.to == w1 && $0.reason == .initial })
        // The only node dies: its shards are fenced off to nobody.
        let orphaned = planner.plan(now: at(ms(850)))
        #expect(orphaned.count == 64 && orphaned.allSatisfy { $0.from == w1 && $0.to == nil && $0.epoch == 2 })
        #expect(planner.plan(now: at(ms(900))).isEmpty)
        // A node appears: assigned at once although within its hold-down, since none is stable.
        planner.heartbeat(w2, capacity: 100, at: at(ms(1000)))
        let assigned = planner.plan(now: at(ms(1000)))
        #expect(assigned.count == 64 && assigned.allSatisfy { $0.from == nil && $0.to == w2 && $0.epoch == 3 })
    }

    @Test func restoredOwnersKeepTheirShardsUntilTheyAreHeardFromOrExpire() throws {
        let stored = try threeWorkers().assignments
        var planner = try ShardPlanner(assignments: stored, restoredAt: at(.seconds(10)))
        #expect(planner.plan(now: at(.seconds(10))).isEmpty)
        // w1 and w2 report; w3 never does.
        let moves = run(&planner, [w1, w2], from: 10_000, to: 12_000)
        let w3Shards = Set(stored.indices.filter { stored[$0].owner == w3 })
        #expect(Set(moves.map(\.shard)) == w3Shards)
        #expect(moves.allSatisfy { $0.from == w3 && $0.reason == .nodeLost })
        #expect(throws: MeshError.self) { try ShardPlanner(assignments: Array(stored.prefix(3)), restoredAt: at(.zero)) }
        #expect(throws: MeshError.self) { try ShardPlanner(shardCount: 0) }
    }
}

extension ShardPlannerTests {
    @Test func aCapacityChangeRebalances() throws {
        var planner = try threeWorkers()
        let moves = run(&planner, [w1, w2, w3], from: 2000, to: 2500, capacity: 100) + {
            planner.heartbeat(w1, capacity: 300, at: at(ms(2500)))
            return planner.plan(now: at(ms(2500)))
        }()
        #expect(!moves.isEmpty && moves.allSatisfy { $0.to == w1 && $0.reason == .rebalance })
        // 300 of 500: 38.4 shards.
        #expect((38...39).contains(planner.shards(ownedBy: w1).count))
    }

    /// Joins, deaths and capacity changes at random, every 3 s, planning every 250 ms:
    /// no shard moves twice in one plan and epochs count every move; a death moves only the
    /// dead node's shards and a join only shards to joining nodes; and every stable node
    /// holds its quota of the shards not held by nodes within their hold-down.
    @Test(arguments: [11, 12, 13, 14, 15] as [UInt64])
    func underChurnMovesAreMinimalAndStableNodesHoldTheirQuotas(seed: UInt64) throws {
        var generator = SeededGenerator(seed: seed)
        let ids = (1...6).map { node("worker-\($0)") }
        var capacity = Dictionary(uniqueKeysWithValues: ids.map { ($0, 100.0) })
        var alive: Set<NodeID> = [ids[0], ids[1], ids[2]]
        var planner = try ShardPlanner()
        _ = run(&planner, alive.sorted(), from: 0, to: 3000)
        var epochs = planner.assignments.map(\.epoch)
        var time = 3000
        var checked = 0
        for _ in 0..<80 {
            let pick = ids[Int(generator.next() % 6)]
            var dead: NodeID?
            var changed: NodeID?
            switch generator.next() % 3 {
            case 0 where alive.count > 1 && alive.contains(pick): alive.remove(pick); dead = pick
            case 0, 1: alive.insert(pick)
            default: capacity[pick] = Double(50 + generator.next() % 3 * 50); changed = pick
            }
            for t in stride(from: time, to: time + 3000, by: 250) {
                for id in alive.sorted() { planner.heartbeat(id, capacity: capacity[id]!, at: at(ms(t))) }
                let moves = planner.plan(now: at(ms(t)))
                #expect(Set(moves.map(\.shard)).count == moves.count)
                for move in moves {
                    #expect(move.epoch == epochs[move.shard] + 1)
                    epochs[move.shard] = move.epoch
                    if let dead { #expect(move.from == dead || move.reason == .nodeJoined, "\(move)") }
                    if changed == nil && dead == nil { #expect(move.reason == .nodeJoined, "\(move)") }
                }
            }
            time += 3000
            let now = at(ms(time - 250))
            let receivers = alive.sorted().filter { planner.isStable($0, now: now) }
            guard !receivers.isEmpty else { continue }
            let owned = counts(planner)
            #expect(owned.keys.allSatisfy { alive.contains($0) }, "a dead node owns shards: \(owned)")
            let held = owned.filter { !receivers.contains($0.key) }.values.reduce(0, +)
            let quotas = ShardPlanner.quotas(shards: 64 - held, weights: receivers.map { capacity[$0]! })
            for (id, quota) in zip(receivers, quotas) {
                #expect(quota.lower...quota.upper ~= owned[id, default: 0], "\(id) owns \(owned[id, default: 0]), quota \(quota)")
            }
            checked += 1
        }
        #expect(checked > 60)
    }
}
