@testable import AgentWorkerService
import MeshCore
import MeshProto
import Testing

@Suite struct SpecTableTests {
    let shardMap = try! ShardMap(shardCount: 4)

    func record(_ id: String, generation: UInt64 = 1, incarnation: UInt64 = 0) -> [UInt8] {
        AgentRecord(spec: AgentSpec(id: id, kind: "counter", generation: generation, labels: ["team": "a"], incarnation: incarnation)).serializedBytes()
    }

    /// Two agents of one shard and one of another.
    func agents() throws -> (sameShard: [AgentID], other: AgentID, shard: Int) {
        let all = try (0..<40).map { try AgentID("agent-\($0)") }
        let shard = shardMap.shard(of: all[0])
        let same = all.filter { shardMap.shard(of: $0) == shard }
        let other = try #require(all.first { shardMap.shard(of: $0) != shard })
        #expect(same.count >= 2)
        return (Array(same.prefix(2)).sorted(), other, shard)
    }

    @Test func specsOfOtherShardsStayEncodedUntilTheirShardIsTaken() throws {
        let (same, other, shard) = try agents()
        var table = SpecTable(shardMap: shardMap)
        table.store(same[1], encoded: record(same[1].rawValue), revision: 17)
        table.store(same[0], encoded: record(same[0].rawValue, generation: 3, incarnation: 9), revision: 40)
        table.store(other, encoded: record(other.rawValue), revision: 5)
        #expect(table[same[0]] == nil && table[same[1]] == nil)

        let taken = table.take(shard: shard)
        #expect(taken.agents == same && taken.unreadable.isEmpty)
        // Generation 1: its life is the revision it was stored at; later ones carry theirs.
        #expect(table[same[1]]?.incarnation == 17 && table[same[1]]?.labels == ["team": "a"])
        #expect(table[same[0]]?.incarnation == 9 && table[same[0]]?.generation == 3)
        #expect(table[other] == nil)

        // Released, then taken again: the same specs, incarnations kept.
        let before = (table[same[0]], table[same[1]])
        table.release(shard: shard)
        #expect(table[same[0]] == nil)
        #expect(table.take(shard: shard).agents == same)
        #expect(table[same[0]] == before.0 && table[same[1]] == before.1)
    }

    @Test func storingRemovingAndUnreadableRecords() throws {
        let (same, _, shard) = try agents()
        var table = SpecTable(shardMap: shardMap)
        let spec = SpecTable.spec(of: try AgentRecord(serializedBytes: record(same[0].rawValue)), storedAt: 3)
        #expect(table.store(same[0], spec: spec) == nil)
        var changed = spec
        changed.generation = 2
        #expect(table.store(same[0], spec: changed) == spec)
        #expect(table[same[0]] == changed)

        table.store(same[1], encoded: [0xFF, 0xFF, 0xFF], revision: 8)
        let taken = table.take(shard: shard)
        #expect(taken.agents == [same[0]] && taken.unreadable == [same[1]])

        table.remove(same[0])
        #expect(table[same[0]] == nil)
        #expect(table.take(shard: shard).agents.isEmpty)
    }
}
