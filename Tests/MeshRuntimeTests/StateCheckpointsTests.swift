import Logging
import MeshCore
import MeshRuntime
import MeshTesting
import Nats
import Testing

@Suite struct StateCheckpointEnvelopeTests {
    @Test func theEnvelopeRoundTripsAndOlderValuesReadWithoutEpochOrIncarnation() {
        let stored = StateCheckpoints.encode(Array("{\"count\":3}".utf8), epoch: 0x0102_0304_0506_0708, incarnation: 0x1112_1314_1516_1718)
        #expect(stored.count == StateCheckpoints.headerBytes + 11)
        let (epoch, incarnation, state) = StateCheckpoints.decode(stored)
        #expect(epoch == 0x0102_0304_0506_0708)
        #expect(incarnation == 0x1112_1314_1516_1718)
        #expect(state == Array("{\"count\":3}".utf8))
        #expect(StateCheckpoints.decode(StateCheckpoints.encode([], epoch: 9, incarnation: 4)) == (9, 4, []))
        // Format 1 (magic, 1, epoch): no incarnation.
        let formatOne: [UInt8] = [0x4D, 0x53, 0x43, 0x01, 0, 0, 0, 0, 0, 0, 0, 7] + Array("{}".utf8)
        #expect(StateCheckpoints.decode(formatOne) == (7, 0, Array("{}".utf8)))
        // A value written before the envelope, or of an unknown format: all of it is the state.
        for legacy in [Array("{\"count\":3}".utf8), [], [0x4D, 0x53, 0x43], [0x4D, 0x53, 0x43, 0x01, 0], [0x4D, 0x53, 0x43, 0x09] + Array(repeating: 0, count: 20)] {
            #expect(StateCheckpoints.decode(legacy) == (0, 0, legacy))
        }
    }

    @Test func onlyACheckpointOfTheSameLifeIsRestored() {
        let stored = StateCheckpoints.Stored(state: Array("5".utf8), epoch: 3, incarnation: 40, revision: 41)
        // The same life, or one unknown on either side: restored, written over at its revision.
        for (checkpoint, agent): (UInt64, UInt64) in [(40, 40), (0, 40), (40, 0), (0, 0)] {
            var same = stored
            same.incarnation = checkpoint
            #expect(StateCheckpoints.restoring(same, incarnation: agent) == (Array("5".utf8), 41))
        }
        // An earlier life's leftover: ignored, and the first write replaces it.
        #expect(StateCheckpoints.restoring(stored, incarnation: 90) == (nil, 41))
        // A later life's (this agent's delete is on its way): ignored, revision unknown.
        #expect(StateCheckpoints.restoring(stored, incarnation: 12) == (nil, nil))
        #expect(StateCheckpoints.restoring(nil, incarnation: 12) == (nil, 0))
    }
}

@Suite(.enabled(if: TestEnvironment.natsAvailable))
struct StateCheckpointsTests {
    let logger = Logger(label: "test.checkpoints")
    let agent = try! AgentID("counter-1")
    /// The agent's incarnation in the tests that are not about incarnations.
    let life: UInt64 = 5

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
        let first = try written(try store.write(agent, state: bytes("1"), epoch: 1, incarnation: life, knownRevision: 0))
        #expect(try store.read(agent) == .init(state: bytes("1"), epoch: 1, incarnation: life, revision: first))

        // The shard moves to epoch 2: the new owner restores it and checkpoints twice.
        let restored = try #require(try store.read(agent))
        var revision = try written(try store.write(agent, state: bytes("2"), epoch: 2, incarnation: life, knownRevision: restored.revision))
        revision = try written(try store.write(agent, state: bytes("3"), epoch: 2, incarnation: life, knownRevision: revision))

        // The old owner wakes up with its revision, with none, or believing it had none;
        // blocking, or with the write that waits without a thread.
        for known: UInt64? in [first, nil, 0] {
            #expect(try store.write(agent, state: bytes("stale"), epoch: 1, incarnation: life, knownRevision: known) == .fenced(epoch: 2))
            #expect(try await store.writePipelined(agent, state: bytes("stale"), epoch: 1, incarnation: life, knownRevision: known) == .fenced(epoch: 2))
        }
        #expect(try store.read(agent) == .init(state: bytes("3"), epoch: 2, incarnation: life, revision: revision))
    }

    @Test func aNewerOwnerReplacesWhatAnOlderOneWroteBehindIt() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        let first = try written(try store.write(agent, state: bytes("1"), epoch: 1, incarnation: life, knownRevision: nil))
        // The epoch-2 owner restored revision `first`; before it writes, the stale owner lands
        // one write (the key had not moved: the documented window).
        _ = try written(try store.write(agent, state: bytes("stale"), epoch: 1, incarnation: life, knownRevision: first))
        // The new owner's compare-and-set fails, it sees an older epoch and replaces it.
        let mine = try written(try store.write(agent, state: bytes("2"), epoch: 2, incarnation: life, knownRevision: first))
        #expect(try store.read(agent) == .init(state: bytes("2"), epoch: 2, incarnation: life, revision: mine))
        // The same owner with a stale revision (two writes of its own crossed) still writes.
        let third = try written(try store.write(agent, state: bytes("3"), epoch: 2, incarnation: life, knownRevision: first))
        #expect(try store.read(agent)?.state == bytes("3"))
        // Without a thread: at the known revision, at a stale one, and with none.
        let fourth = try written(try await store.writePipelined(agent, state: bytes("4"), epoch: 2, incarnation: life, knownRevision: third))
        #expect(try store.read(agent) == .init(state: bytes("4"), epoch: 2, incarnation: life, revision: fourth))
        for (known, value) in [(third, "5"), (nil, "6")] as [(UInt64?, String)] {
            _ = try written(try await store.writePipelined(agent, state: bytes(value), epoch: 2, incarnation: life, knownRevision: known))
            #expect(try store.read(agent)?.state == bytes(value))
        }
    }

    @Test func aWriteOfAnEarlierLifeNeverReplacesALaterLifesCheckpoint() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        // The agent's first life (incarnation 10) checkpoints at epoch 1; its worker dies
        // before it hears of the delete, so the checkpoint stays.
        let first = try written(try store.write(agent, state: bytes("old"), epoch: 1, incarnation: 10, knownRevision: 0))
        // Created again (incarnation 20) on the shard's next owner: it restores nothing and
        // writes over the leftover.
        let (state, known) = StateCheckpoints.restoring(try store.read(agent), incarnation: 20)
        #expect(state == nil && known == first)
        let later = try written(try store.write(agent, state: bytes("new"), epoch: 2, incarnation: 20, knownRevision: known))

        // A writer of the first life, late, even at a newer epoch: refused.
        for known: UInt64? in [first, nil, 0] {
            #expect(try store.write(agent, state: bytes("stale"), epoch: 3, incarnation: 10, knownRevision: known) == .superseded(incarnation: 20))
            #expect(try await store.writePipelined(agent, state: bytes("stale"), epoch: 3, incarnation: 10, knownRevision: known) == .superseded(incarnation: 20))
        }
        // A worker whose spec is still the first life's restores nothing, and its first
        // write (revision unknown) is refused.
        let (behind, unknown) = StateCheckpoints.restoring(try store.read(agent), incarnation: 10)
        #expect(behind == nil && unknown == nil)
        #expect(try store.write(agent, state: bytes("stale"), epoch: 2, incarnation: 10, knownRevision: unknown) == .superseded(incarnation: 20))
        #expect(try store.read(agent) == .init(state: bytes("new"), epoch: 2, incarnation: 20, revision: later))
    }

    @Test func checkpointsWithoutAnEnvelopeAndDeletedOnesAreReplacedByAnyOwner() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        let legacy = try store.bucket.put(agent.rawValue, bytes("{\"count\":5}"))
        #expect(try store.read(agent) == .init(state: bytes("{\"count\":5}"), epoch: 0, revision: legacy))
        _ = try written(try store.write(agent, state: bytes("6"), epoch: 1, incarnation: life, knownRevision: nil))
        #expect(try store.read(agent)?.epoch == 1)

        // Deleted with its agent, then created again: a fresh checkpoint, blocking or not.
        try store.bucket.delete(agent.rawValue)
        #expect(try store.read(agent) == nil)
        _ = try written(try store.write(agent, state: bytes("0"), epoch: 1, incarnation: life, knownRevision: 0))
        #expect(try store.read(agent)?.state == bytes("0"))
        try store.bucket.delete(agent.rawValue)
        _ = try written(try await store.writePipelined(agent, state: bytes("00"), epoch: 1, incarnation: life, knownRevision: 0))
        #expect(try store.read(agent)?.state == bytes("00"))
    }

    @Test func manyCheckpointsReadTogetherMatchTheOnesReadAlone() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let (nats, store) = try await checkpoints(server)
        defer { nats.close() }

        let agents = try (0..<300).map { try AgentID("counter-\($0)") }
        for (index, agent) in agents.enumerated() where index % 3 != 0 {
            _ = try written(try store.write(agent, state: bytes("\(index)"), epoch: UInt64(index), incarnation: life, knownRevision: 0))
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
