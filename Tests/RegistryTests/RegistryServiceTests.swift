import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Store
import Testing

/// `mesh-registry` as a real process against a real nats-server and PostgreSQL.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct RegistryServiceTests {
    @Test func createGetUpdateDeleteWithCompareAndSet() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry()
        let registry = harness.client
        let id = try AgentID("counter-1")

        var first = spec("counter-1", kind: "counter", labels: ["team": "search"], config: #"{"initial":5}"#)
        first.incarnation = 999  // registry-owned: ignored
        let created = try await registry.create(first)
        #expect(created.spec.generation == 1 && created.revision > 0 && created.status == .pending && created.createdAtUnixMs > 0)
        // This life of the id is the create's revision, written into the spec from the first update on.
        #expect(created.spec.incarnation == 0 && created.incarnation(storedAt: created.revision) == created.revision)
        #expect(try await registry.get(id) == created)
        #expect(await code { _ = try await registry.create(spec("counter-1")) } == "already_exists")

        var changed = created.spec
        changed.labels["tier"] = "gold"
        changed.incarnation = 7
        #expect(await code { _ = try await registry.update(changed, expectedRevision: created.revision + 100) } == "conflict")
        let updated = try await registry.update(changed, expectedRevision: created.revision)
        #expect(updated.spec.generation == 2 && updated.revision > created.revision && updated.spec.labels["tier"] == "gold")
        #expect(updated.createdAtUnixMs == created.createdAtUnixMs)
        #expect(updated.spec.incarnation == created.revision)
        #expect(try await registry.get(id).spec.incarnation == created.revision)
        // The same spec again changes nothing.
        #expect(try await registry.upsert(changed).revision == updated.revision)
        #expect(await code { _ = try await registry.update(changed, expectedRevision: created.revision) } == "conflict")
        #expect(await code { _ = try await registry.update(spec("nobody")) } == "not_found")
        let upserted = try await registry.upsert(spec("fresh-1"))
        #expect(upserted.spec.generation == 1)

        var again = changed
        again.labels["tier"] = "silver"
        let updatedAgain = try await registry.update(again)
        #expect(updatedAgain.spec.generation == 3 && updatedAgain.spec.incarnation == created.revision)

        #expect(await code { try await registry.delete(id, expectedRevision: created.revision) } == "conflict")
        let deleted = try await registry.delete(id, expectedRevision: updatedAgain.revision)
        #expect(deleted.spec.id == "counter-1")
        #expect(await code { _ = try await registry.get(id) } == "not_found")
        #expect(await code { try await registry.delete(id) } == "not_found")
        // Re-created after a delete: a new life, generation 1.
        let reborn = try await registry.create(spec("counter-1"))
        #expect(reborn.spec.generation == 1 && reborn.incarnation(storedAt: reborn.revision) > created.revision)
    }

    /// The callback form of get: a record, `not_found`, and `unavailable` once nobody serves;
    /// each completes exactly once (a second resume of the continuation would trap).
    @Test func callbackGetCompletesOnceWithEachOutcome() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        let process = try await harness.startRegistry()
        let registry = harness.client
        func get(_ id: String) async throws -> Result<AgentRecord, MeshError> {
            let id = try AgentID(id)
            return await withCheckedContinuation { done in registry.get(id) { done.resume(returning: $0) } }
        }
        let created = try await registry.create(spec("callback-1", labels: ["team": "a"]))
        #expect(try await get("callback-1").get() == created)
        func failure(_ result: Result<AgentRecord, MeshError>) -> MeshError.Code? {
            if case .failure(let error) = result { error.code } else { nil }
        }
        #expect(failure(try await get("callback-2")) == .notFound)
        process.kill9()
        // nats-server drops a killed process's subscriptions once it reads the closed socket;
        // a request sent before that goes to it and times out instead.
        let quick = RegistryClient(connection: harness.connection, subjects: harness.subjects, shardMap: harness.shardMap, timeout: .milliseconds(200))
        let gone = await TestEnvironment.waitUntil(timeout: .seconds(5)) {
            do { _ = try await quick.get(try AgentID("callback-1")) } catch { return (error as? MeshError)?.code == .unavailable }
            return false
        }
        #expect(gone, "requests still reach the killed registry")
        #expect(failure(try await get("callback-1")) == .unavailable)
    }

    /// Creates and deletes are answered when JetStream acknowledges them, many in flight at
    /// once: racing writes of one id leave exactly one winner, every other write lands once.
    @Test func concurrentCreatesAndDeletesOfOneIdHaveOneWinnerAndManyDistinctOnesAllLand() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry()
        let registry = harness.client
        /// The error codes (nil: success) of `body` run 16 times at once.
        func race(_ body: @escaping @Sendable () async throws -> Void) async -> [String?] {
            await withTaskGroup(of: String?.self) { group in
                for _ in 0..<16 { group.addTask { await code(body) } }
                var all: [String?] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
        }
        let outcomes = await race { _ = try await registry.create(spec("contested")) }
        #expect(outcomes.filter { $0 == nil }.count == 1, "\(outcomes)")
        #expect(outcomes.filter { $0 == "already_exists" }.count == 15, "\(outcomes)")

        let revisions = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for index in 0..<300 { group.addTask { try await registry.create(spec("many-\(index)")).revision } }
            var all: [UInt64] = []
            for try await revision in group { all.append(revision) }
            return all
        }
        #expect(Set(revisions).count == 300 && !revisions.contains(0))
        for index in stride(from: 0, to: 300, by: 37) {
            #expect(try await registry.get(AgentID("many-\(index)")).spec.generation == 1)
        }

        // Deletes race the same way: one wins, the others find nothing to delete.
        let deletes = await race { _ = try await registry.delete(AgentID("contested")) }
        #expect(deletes.filter { $0 == nil }.count == 1, "\(deletes)")
        #expect(deletes.allSatisfy { $0 == nil || $0 == "not_found" || $0 == "conflict" }, "\(deletes)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<300 { group.addTask { _ = try await registry.delete(AgentID("many-\(index)")) } }
            try await group.waitForAll()
        }
        #expect(try await registry.list(limit: 1_000).records.isEmpty)
        #expect(try await registry.create(spec("contested")).spec.generation == 1)
    }

    @Test func badInputOnEveryVerbGetsTheRightCodeAndTheServiceKeepsAnswering() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry(environment: ["MESH_EXTRA_KINDS": "greeter"])
        let registry = harness.client
        let subjects = harness.subjects
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0x0F, 0x12, 0x99]

        for verb in [RegistryVerb.get, .put, .delete] {
            let reply: AgentReply = try await harness.raw(subjects.registry(shard: 3, verb: verb), garbage)
            #expect(reply.error?.code == "invalid_argument", "\(verb)")
        }
        let listReply: ListAgentsReply = try await harness.raw(subjects.registry(verb: .list), garbage)
        #expect(listReply.error?.code == "invalid_argument")
        // A wrong Mesh-Type header.
        let wrongType: AgentReply = try await harness.raw(
            subjects.registry(shard: 3, verb: .get), GetAgentRequest(agentId: "a").serializedBytes(), type: "mesh.v1.Event")
        #expect(wrongType.error?.code == "invalid_argument")
        // Oversized request.
        let huge: AgentReply = try await harness.raw(subjects.registry(shard: 3, verb: .put), [UInt8](repeating: 0x0A, count: 300_000))
        #expect(huge.error?.code == "too_large")

        // Invalid ids on every verb.
        for bad in ["Bad.Id", "", "-x", String(repeating: "a", count: 64), "a b", "a*"] {
            let get: AgentReply = try await harness.raw(subjects.registry(shard: 0, verb: .get), GetAgentRequest(agentId: bad).serializedBytes())
            #expect(get.error?.code == "invalid_id", "get \(bad)")
            let delete: AgentReply = try await harness.raw(subjects.registry(shard: 0, verb: .delete), DeleteAgentRequest(agentId: bad).serializedBytes())
            #expect(delete.error?.code == "invalid_id", "delete \(bad)")
            let put: AgentReply = try await harness.raw(
                subjects.registry(shard: 0, verb: .put), PutAgentRequest(spec: spec(bad)).serializedBytes())
            #expect(put.error?.code == "invalid_id", "put \(bad)")
        }
        // Validation of the spec.
        #expect(await code { _ = try await registry.create(spec("k-1", kind: "nope")) } == "invalid_argument")
        #expect(await code { _ = try await registry.create(spec("k-2", kind: "")) } == "invalid_argument")
        _ = try await registry.create(spec("custom-1", kind: "greeter"))
        let bigConfig = #"{"x":""# + String(repeating: "y", count: 70_000) + #""}"#
        #expect(await code { _ = try await registry.create(spec("k-3", config: bigConfig)) } == "too_large")
        #expect(await code { _ = try await registry.create(spec("k-4", config: "[1,2]")) } == "invalid_argument")
        #expect(await code { _ = try await registry.create(spec("k-5", config: "{nope")) } == "invalid_argument")
        #expect(await code { _ = try await registry.create(spec("k-6", labels: ["bad key": "v"])) } == "invalid_argument")
        var big = spec("k-7")
        big.mailboxCapacity = 100_001
        #expect(await code { _ = try await registry.create(big) } == "invalid_argument")
        big = spec("k-8")
        big.actionTimeoutMs = 600_001
        #expect(await code { _ = try await registry.create(big) } == "invalid_argument")
        big = spec("k-9")
        big.restartType = .unrecognized(42)
        #expect(await code { _ = try await registry.create(big) } == "invalid_argument")
        let badMode: AgentReply = try await harness.raw(
            subjects.registry(shard: 0, verb: .put), PutAgentRequest(spec: spec("k-10"), mode: .unrecognized(7)).serializedBytes())
        #expect(badMode.error?.code == "invalid_argument")
        // List arguments.
        #expect(await code { _ = try await registry.list(selector: "a in (") } == "invalid_argument")
        #expect(await code { _ = try await registry.list(node: "Bad Node") } == "invalid_id")
        let tooMany: ListAgentsReply = try await harness.raw(subjects.registry(verb: .list), ListAgentsRequest(limit: 5_000).serializedBytes())
        #expect(tooMany.error?.code == "invalid_argument")
        let badCursor: ListAgentsReply = try await harness.raw(subjects.registry(verb: .list), ListAgentsRequest(cursor: "a b").serializedBytes())
        #expect(badCursor.error?.code == "invalid_argument")

        // Still serving, and nothing invalid was stored.
        let all = try await registry.listAll()
        #expect(all.map(\.spec.id) == ["custom-1"])
        #expect(harness.registries["registry-1"]?.isRunning == true)
        // Errors are counted in the endpoint statistics (discovery).
        #expect(harness.logTail().contains("registry serving"))
    }

    @Test func listWithSelectorsPaginationAndStatusFromTheWorker() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry()
        let registry = harness.client
        let teams = ["a", "b", "c"]
        for index in 0..<250 {
            var labels = ["team": teams[index % 3]]
            if index % 2 == 0 { labels["tier"] = "gold" }
            if index % 10 == 0 { labels["canary"] = "" }
            _ = try await registry.create(spec(String(format: "agent-%03d", index), labels: labels))
        }

        // Pages of 100 cover every agent once, in id order.
        var ids: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try await registry.list(cursor: cursor, limit: 100)
            ids += page.records.map(\.spec.id)
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil
        #expect(pages == 3)
        #expect(ids == (0..<250).map { String(format: "agent-%03d", $0) })

        func count(_ selector: String) async throws -> Int { try await registry.listAll(selector: selector, pageSize: 37).count }
        #expect(try await count("team=a") == 84)
        #expect(try await count("team!=a") == 166)
        #expect(try await count("team in (a,b)") == 167)
        #expect(try await count("team notin (a,b)") == 83)
        #expect(try await count("tier") == 125)
        #expect(try await count("!tier") == 125)
        #expect(try await count("team=a,tier=gold") == 42)
        #expect(try await count("canary,team=b") == 8)
        #expect(try await count("nope=x") == 0)

        // The worker's status (KV mesh_status) is merged into every record.
        let js = try harness.connection.jetStream()
        let status = try js.keyValue(harness.subjects.statusBucket)
        for index in [3, 7, 11] {
            let record = AgentRecord(
                status: .running, placement: Placement(nodeId: "node-x", shard: 5, shardEpoch: 9), restartCount: 2,
                startedAtUnixMs: 1_700_000_000_000)
            try status.put(String(format: "agent-%03d", index), record.serializedBytes())
        }
        let merged = try await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            try await registry.list(node: "node-x").records.count == 3
        }
        #expect(merged)
        let one = try await registry.get(AgentID("agent-007"))
        #expect(one.status == .running && one.placement?.nodeId == "node-x" && one.restartCount == 2 && one.spec.generation == 1)
        #expect(try await registry.get(AgentID("agent-008")).status == .pending)
        #expect(try await registry.listAll(status: .running).map(\.spec.id) == ["agent-003", "agent-007", "agent-011"])
        #expect(try await registry.listAll(selector: "team=b", node: "node-x").map(\.spec.id) == ["agent-007"])
    }

    @Test func publishedSpecsAreAppliedOnceAndInvalidOnesTerminated() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry()
        let registry = harness.client
        let events = try harness.connection.subscribe(harness.subjects.event(.agentRejected), queue: nil, bufferSize: 100)
        let created = try harness.connection.subscribe(harness.subjects.event(.agentCreated), queue: nil, bufferSize: 1_000)
        try harness.connection.flush(timeout: .seconds(2))

        let first = try await registry.publishSpec(spec("pub-1", labels: ["via": "stream"]), messageID: "m-1")
        let again = try await registry.publishSpec(spec("pub-1", labels: ["via": "other"]), messageID: "m-1")
        #expect(!first.duplicate && again.duplicate)
        // Content-derived ids: the same spec published twice is stored once.
        #expect(try await !registry.publishSpec(spec("pub-2")).duplicate)
        #expect(try await registry.publishSpec(spec("pub-2")).duplicate)
        // An invalid spec is terminated, with an event.
        try await registry.publishSpec(spec("pub-bad", kind: "unknown-kind"))
        let js = try harness.connection.jetStream()
        _ = try await js.publish(harness.subjects.specsAll.replacingOccurrences(of: ">", with: "pub-3"), payload: [0xFF, 0xFF, 0x01])

        let applied = try await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            (try? await registry.listAll().map(\.spec.id)) == ["pub-1", "pub-2"]
        }
        #expect(applied)
        let record = try await registry.get(AgentID("pub-1"))
        #expect(record.spec.labels == ["via": "stream"] && record.spec.generation == 1)
        var rejected = 0
        for await message in events {
            let event = try Event(serializedBytes: message.payload)
            #expect(event.type == "rejected" && !event.reason.isEmpty)
            rejected += 1
            if rejected == 2 { break }
        }
        // Nothing left pending or unacknowledged: the stream (work queue) is empty.
        let drained = try await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            let info = try js.consumerInfo(stream: harness.subjects.specsStream, name: harness.subjects.registrySpecsConsumer)
            return info.numPending == 0 && info.numAckPending == 0
        }
        #expect(drained)
        // One created event per applied spec, none for the duplicates.
        var createdIDs: [String] = []
        for await message in created {
            createdIDs.append(try Event(serializedBytes: message.payload).agentId)
            if createdIDs.count == 2 { break }
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(createdIDs.sorted() == ["pub-1", "pub-2"] && created.pending == 0)
    }

    @Test func aSecondInstanceCatchesUpBeforeItAnswers() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        let first = try await harness.startRegistry("registry-1")
        let registry = harness.client
        for index in 0..<300 { _ = try await registry.create(spec("early-\(index)")) }
        try await harness.startRegistry("registry-2")
        #expect(await first.stop(signal: SIGTERM, timeout: .seconds(5)) == 0)
        // Only the second instance is left: it must know every agent at once.
        #expect(try await registry.listAll().count == 300)
        #expect(try await registry.get(AgentID("early-299")).spec.id == "early-299")
        // And it follows new writes.
        _ = try await registry.create(spec("late-1"))
        #expect(try await registry.listAll().count == 301)
    }

    /// Checkpoints left behind by agents deleted while no worker could remove them are
    /// removed by the sweep; a live agent's checkpoint and the shard hand-over markers stay.
    @Test func theStateSweepRemovesOnlyCheckpointsOfDeletedAgents() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry(environment: ["MESH_STATE_SWEEP_INTERVAL_S": "1"])
        let registry = harness.client
        let state = try harness.connection.jetStream().keyValue("mesh_state")
        for id in ["alive-1", "doomed-1"] { _ = try await registry.create(spec(id, kind: "counter")) }
        var kept = ["handover.3": try state.put("handover.3", Array("7".utf8))]
        kept["alive-1"] = try state.put("alive-1", Array(#"{"value":3}"#.utf8))
        for id in ["doomed-1", "never-created"] { _ = try state.put(id, Array(#"{"value":3}"#.utf8)) }
        try await registry.delete(AgentID("doomed-1"))
        func present(_ key: String) -> Bool { (try? state.get(key)).flatMap { $0 } != nil }
        let swept = await TestEnvironment.waitUntil(timeout: .seconds(20)) { !present("doomed-1") && !present("never-created") }
        #expect(swept, "checkpoints of deleted agents still there")
        try await Task.sleep(for: .seconds(2))  // at least one more round
        for (key, revision) in kept { #expect(try state.get(key)?.revision == revision, "\(key)") }
    }

    @Test func postgresMirrorAndTimelineCatchUpAfterAnOutage() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry()
        let registry = harness.client
        for index in 0..<20 { _ = try await registry.create(spec("pg-\(index)", labels: ["n": "\(index)"])) }
        var changed = spec("pg-0", labels: ["n": "changed"])
        changed.kind = "echo"
        _ = try await registry.update(changed)
        try await registry.delete(AgentID("pg-1"))
        let js = try harness.connection.jetStream()
        try js.keyValue(harness.subjects.statusBucket).put(
            "pg-2", AgentRecord(status: .running, placement: Placement(nodeId: "node-y", shard: 1)).serializedBytes())

        let store = Store(configuration: StoreConfiguration(connectionString: harness.postgres.connectionString), logger: Logger(label: "test"))
        defer { store.close() }
        func scalar(_ sql: String) async -> Int64? {
            (try? await store.query(sql)).flatMap { try? $0.first?.decode(0, Int64.self) }
        }
        let mirrored = try await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            let live = await scalar("SELECT count(*) FROM agents WHERE deleted_at IS NULL AND kind = 'echo'")
            let deleted = await scalar("SELECT count(*) FROM agents WHERE id = 'pg-1' AND deleted_at IS NOT NULL")
            let generation = await scalar("SELECT generation FROM agents WHERE id = 'pg-0'")
            let running = await scalar("SELECT count(*) FROM agents WHERE id = 'pg-2' AND status = 'running' AND node_id = 'node-y'")
            let events = await scalar("SELECT count(*) FROM agent_events")
            return live == 19 && deleted == 1 && generation == 2 && running == 1 && events == 22
        }
        #expect(mirrored, "\(harness.logTail())")
        let labels = try await store.query("SELECT labels->>'n' FROM agents WHERE id = 'pg-0'")
        #expect(try labels.first?.decode(0, String.self) == "changed")
        let timeline = try await store.query("SELECT type, reason FROM agent_events WHERE agent_id = 'pg-0' ORDER BY occurred_at, type")
        #expect(try timeline.map { try $0.decode(0, String.self) } == ["created", "updated"])

        // PostgreSQL goes away; the registry keeps serving; rows catch up once it is back.
        harness.postgres.stopKeepingData()
        for index in 20..<40 { _ = try await registry.create(spec("pg-\(index)")) }
        try await registry.delete(AgentID("pg-3"))
        try await Task.sleep(for: .seconds(2))
        #expect(try await registry.listAll().count == 38)
        try await harness.postgres.restart()
        let caughtUp = try await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            let live = await scalar("SELECT count(*) FROM agents WHERE deleted_at IS NULL")
            let events = await scalar("SELECT count(*) FROM agent_events")
            return live == 38 && events == 43
        }
        #expect(caughtUp, "\(harness.logTail())")
    }
}
