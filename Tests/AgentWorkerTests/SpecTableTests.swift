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

    func spec(_ id: String, generation: UInt64 = 1, incarnation: UInt64 = 0, storedAt revision: UInt64) throws -> AgentSpec {
        SpecTable.spec(of: try AgentRecord(serializedBytes: record(id, generation: generation, incarnation: incarnation)), storedAt: revision)
    }

    @Test func otherShardsAreKnownByIdUntilTheirShardIsTakenAndTheirSpecsStored() throws {
        let (same, other, shard) = try agents()
        var table = SpecTable(shardMap: shardMap)
        table.note(same[1], revision: 17)
        table.note(same[0], revision: 40)
        table.note(other, revision: 5)
        #expect(table[same[0]] == nil && table[same[1]] == nil)
        #expect(table.agents(of: shard) == same)

        // Taken: the specs read from KV are stored at their revisions (the read may be newer
        // than the watch). Generation 1: its life is the revision it was stored at.
        let first = table.store(same[1], spec: try spec(same[1].rawValue, storedAt: 17), revision: 17)
        #expect(first == .new)
        let second = table.store(same[0], spec: try spec(same[0].rawValue, generation: 3, incarnation: 9, storedAt: 41), revision: 41)
        #expect(second == .new)
        #expect(table[same[1]]?.incarnation == 17 && table[same[1]]?.labels == ["team": "a"])
        #expect(table[same[0]]?.incarnation == 9 && table[same[0]]?.generation == 3)
        #expect(table[other] == nil)
        // The watch entry the read overtook is stale; a later one replaces the spec.
        let overtaken = table.store(same[0], spec: try spec(same[0].rawValue, generation: 2, storedAt: 40), revision: 40)
        #expect(overtaken == .stale)
        let newer = try spec(same[0].rawValue, generation: 4, incarnation: 9, storedAt: 45)
        let later = table.store(same[0], spec: newer, revision: 45)
        #expect(later == .replaced(try spec(same[0].rawValue, generation: 3, incarnation: 9, storedAt: 41)))
        #expect(table[same[0]] == newer)

        // Released: the specs go, the agents stay known.
        table.release(shard: shard)
        #expect(table[same[0]] == nil && table[same[1]] == nil)
        #expect(table.agents(of: shard) == same)
        // Noting an older revision changes nothing; a stored spec needs a revision past it.
        table.note(same[0], revision: 44)
        let belowNoted = table.store(same[0], spec: newer, revision: 44)
        #expect(belowNoted == .stale)
        let pastNoted = table.store(same[0], spec: newer, revision: 45)
        #expect(pastNoted == .new)
    }

    @Test func deletesOlderThanTheKnownRevisionAreIgnored() throws {
        let (same, other, shard) = try agents()
        var table = SpecTable(shardMap: shardMap)
        // Deleted at 20, created again at 21: a read at 21 came before the queued delete.
        let recreated = table.store(same[0], spec: try spec(same[0].rawValue, storedAt: 21), revision: 21)
        #expect(recreated == .new)
        let staleDelete = table.remove(same[0], revision: 20)
        #expect(!staleDelete)
        #expect(table[same[0]] != nil)
        let delete = table.remove(same[0], revision: 22)
        #expect(delete)
        #expect(table[same[0]] == nil && table.agents(of: shard).isEmpty)

        table.note(other, revision: 8)
        let staleOtherDelete = table.remove(other, revision: 7)
        #expect(!staleOtherDelete)
        let otherDelete = table.remove(other, revision: 9)
        #expect(otherDelete)
        #expect(table.agents(of: shardMap.shard(of: other)).isEmpty)
        // Unknown agents are removed without complaint.
        let unknownDelete = table.remove(same[1], revision: 1)
        #expect(unknownDelete)
    }
}
