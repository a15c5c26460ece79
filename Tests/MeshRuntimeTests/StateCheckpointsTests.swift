import Logging
import MeshCore
import MeshRuntime
import MeshTesting
import Nats
import Testing

@Suite struct StateCheckpointEnvelopeTests {
    @Test func theEnvelopeRoundTripsAndOlderValuesReadAsEpochZero() {
        let stored = StateCheckpoints.encode(Array("{\"count\":3}".utf8), epoch: 0x0102_0304_0506_0708)
        #expect(stored.count == StateCheckpoints.headerBytes + 11)
        let (epoch, state) = StateCheckpoints.decode(stored)
        #expect(epoch == 0x0102_0304_0506_0708)
        #expect(state == Array("{\"count\":3}".utf8))
        #expect(StateCheckpoints.decode(StateCheckpoints.encode([], epoch: 9)) == (9, []))
        // A value written before the envelope: all of it is the state.
        for legacy in [Array("{\"count\":3}".utf8), [], [0x4D, 0x53, 0x43]] {
            #expect(StateCheckpoints.decode(legacy) == (0, legacy))
        }
    }
}

@Suite(.enabled(if: TestEnvironment.natsAvailable))
struct StateCheckpointsTests {
    let logger = Logger(label: "test.checkpoints")
    let agent = try! AgentID("counter-1")

    func checkpoints(_ server: NatsServer) async throws -> (NatsConnection, StateCheckpoints) {
        var options = NatsOptions()
        options.servers = [server.url]
        let nats = try await NatsConnection.connect(options, logger: logger)
        let resources = try await ClusterResources.ensure(
            try nats.jetStream(), subjects: try Subjects(prefix: "mesh"), replicas: 1, shardCount: 16, logger: logger)
        return (nats, StateCheckpoints(bucket: resources.state))
    }

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func written(_ outcome: StateCheckpoints.WriteOutcome) throws -> UInt64 {
        guard case .written(let revision) = outcome else {
            Issue.record("expected a write, got \(outcome)")
            throw NatsError(code: .other, operation: "test")
        }
        return revision
    }

    @Test func anOwnerOfAnOlderEpochNeverOverwritesANewerOwnersCheckpoint() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        // The owner at epoch 1 writes the agent's first checkpoint.
        #expect(try store.read(agent) == nil)
        let first = try written(try store.write(agent, state: bytes("1"), epoch: 1, knownRevision: 0))
        #expect(try store.read(agent) == .init(state: bytes("1"), epoch: 1, revision: first))

        // The shard moves to epoch 2: the new owner restores it and checkpoints twice.
        let restored = try #require(try store.read(agent))
        var revision = try written(try store.write(agent, state: bytes("2"), epoch: 2, knownRevision: restored.revision))
        revision = try written(try store.write(agent, state: bytes("3"), epoch: 2, knownRevision: revision))

        // The old owner wakes up with its revision, with none, or believing it had none.
        for known: UInt64? in [first, nil, 0] {
            #expect(try store.write(agent, state: bytes("stale"), epoch: 1, knownRevision: known) == .fenced(epoch: 2))
        }
        #expect(try store.read(agent) == .init(state: bytes("3"), epoch: 2, revision: revision))
    }

    @Test func aNewerOwnerReplacesWhatAnOlderOneWroteBehindIt() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        let first = try written(try store.write(agent, state: bytes("1"), epoch: 1, knownRevision: nil))
        // The epoch-2 owner restored revision `first`; before it writes, the stale owner lands
        // one write (the key had not moved: the documented window).
        _ = try written(try store.write(agent, state: bytes("stale"), epoch: 1, knownRevision: first))
        // The new owner's compare-and-set fails, it sees an older epoch and replaces it.
        let mine = try written(try store.write(agent, state: bytes("2"), epoch: 2, knownRevision: first))
        #expect(try store.read(agent) == .init(state: bytes("2"), epoch: 2, revision: mine))
        // The same owner with a stale revision (two writes of its own crossed) still writes.
        _ = try written(try store.write(agent, state: bytes("3"), epoch: 2, knownRevision: first))
        #expect(try store.read(agent)?.state == bytes("3"))
    }

    @Test func checkpointsWithoutAnEnvelopeAndDeletedOnesAreReplacedByAnyOwner() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        let legacy = try store.bucket.put(agent.rawValue, bytes("{\"count\":5}"))
        #expect(try store.read(agent) == .init(state: bytes("{\"count\":5}"), epoch: 0, revision: legacy))
        _ = try written(try store.write(agent, state: bytes("6"), epoch: 1, knownRevision: nil))
        #expect(try store.read(agent)?.epoch == 1)

        // Deleted with its agent, then created again: a fresh checkpoint.
        try store.bucket.delete(agent.rawValue)
        #expect(try store.read(agent) == nil)
        _ = try written(try store.write(agent, state: bytes("0"), epoch: 1, knownRevision: 0))
        #expect(try store.read(agent)?.state == bytes("0"))
    }

    @Test func manyCheckpointsReadTogetherMatchTheOnesReadAlone() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        let agents = try (0..<300).map { try AgentID("counter-\($0)") }
        for (index, agent) in agents.enumerated() where index % 3 != 0 {
            _ = try written(try store.write(agent, state: bytes("\(index)"), epoch: UInt64(index), knownRevision: 0))
        }
        _ = try store.bucket.put(agents[1].rawValue, bytes("legacy"))
        try store.bucket.delete(agents[2].rawValue)
        // mesh_state as the mesh creates it allows the batched direct get this needs.
        let together = try await store.read(agents)
        #expect(together.count == 199)
        for agent in agents { #expect(together[agent] == (try store.read(agent)), "\(agent)") }
        #expect(together[agents[1]] == .init(state: bytes("legacy"), epoch: 0, revision: try #require(try store.read(agents[1])).revision))
        #expect(together[agents[4]]?.state == bytes("4") && together[agents[4]]?.epoch == 4)
    }
}
