import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Testing

/// Agents across real processes: placed on workers by shard, answering actions, keeping
/// their state when their worker dies, and supervised. Specs are written straight to KV
/// `mesh_agents` (what the registry stores), so these tests need no registry.
@Suite(.enabled(if: TestEnvironment.natsAvailable), .serialized)
struct AgentFlowTests {
    final class Mesh: @unchecked Sendable {
        let nats: NatsServer
        let logs: String
        var processes: [String: ChildProcess] = [:]
        var client: NatsConnection!
        var agents: KeyValue!
        var actions: ActionClient!
        var status: KeyValue!

        init() async throws {
            nats = try await NatsServer.start()
            logs = try TestEnvironment.makeTempDirectory(prefix: "agents")
        }

        func start(_ service: ServiceName, id: String, extra: [String: String] = [:]) throws {
            var environment = ["MESH_NATS_URL": nats.url, "MESH_INSTANCE_ID": id, "MESH_LOG_LEVEL": "info"]
            environment.merge(extra) { _, new in new }
            processes[id] = try ChildProcess(
                executable: try MeshBinaries.path(service.rawValue), arguments: [], logPath: "\(logs)/\(id).log", environment: environment)
        }

        func connect() async throws {
            var options = NatsOptions()
            options.servers = [nats.url]
            client = try await NatsConnection.connect(options, logger: Logger(label: "test"))
            let js = try client.jetStream()
            _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { (try? js.keyValue("mesh_shards")) != nil }
            agents = try js.keyValue("mesh_agents")
            status = try js.keyValue("mesh_status")
            actions = ActionClient(connection: client, subjects: try Subjects(), shardMap: try ShardMap())
        }

        func create(_ id: String, kind: String, config: String = "{}", group: String = "", maxRestarts: UInt32 = 0) throws {
            var record = AgentRecord()
            record.spec = AgentSpec(id: id, kind: kind, generation: 1, config: Array(config.utf8), group: group, maxRestarts: maxRestarts, periodSeconds: 5)
            _ = try agents.put(id, record.serializedBytes())
        }

        /// A supervisor (a node is dead after `heartbeatMisses` missed heartbeats; nil: the
        /// default), worker-1 and worker-2 (with `extra` environment) and counter agents
        /// `ids`, once both workers own shards.
        /// - Returns: the agents on worker-2 and its shards.
        func twoWorkersWithCounters(
            _ ids: [String], heartbeatMisses: Int? = 2, worker2 extra: [String: String] = [:]
        ) async throws -> (victims: [String], shards: Set<Int>) {
            try start(.supervisor, id: "supervisor-1", extra: heartbeatMisses.map { ["MESH_HEARTBEAT_MISSES": "\($0)"] } ?? [:])
            try start(.agentWorker, id: "worker-1")
            try start(.agentWorker, id: "worker-2", extra: extra)
            try await connect()
            for id in ids { try create(id, kind: "counter") }
            let spread = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
                let current = self.owners()
                return current.count == 64 && ["worker-1", "worker-2"].allSatisfy { worker in current.values.filter { $0 == worker }.count == 32 }
            }
            #expect(spread, "shards not spread 32 and 32 over both workers: \(self.owners())")
            let shardMap = try ShardMap()
            let shards = Set(owners().filter { $0.value == "worker-2" }.keys)
            let victims = ids.filter { shards.contains(shardMap.shard(of: try! AgentID($0))) }
            #expect(!victims.isEmpty, "worker-2 hosts none of the agents")
            return (victims, shards)
        }

        /// ``shardOwners()``, or none when KV cannot be read.
        func owners() -> [Int: String] { (try? shardOwners()) ?? [:] }

        /// Waits (≤ 30 s) until worker-2, back from a freeze, holds its share (32 of 64) again,
        /// and expects most of it to be the shards it held before (those it outranks worker-1
        /// on come back first), with some of `victims` on them.
        func worker2TakesItsShareBack(held frozenShards: Set<Int>, victims: [String]) async throws {
            let back = await TestEnvironment.waitUntil(timeout: .seconds(30)) { self.owners().values.count { $0 == "worker-2" } == 32 }
            #expect(back, "worker-2 did not get its share back: \(processes["supervisor-1"]!.logTail(maxBytes: 1_500))")
            let shardMap = try ShardMap()
            let regained = frozenShards.filter { owners()[$0] == "worker-2" }
            let returned = victims.filter { regained.contains(shardMap.shard(of: try! AgentID($0))) }
            print("worker-2 took back \(regained.count) of its \(frozenShards.count) shards, with \(returned.count) of \(victims.count) agents")
            #expect(regained.count >= 16 && !returned.isEmpty, "worker-2 took back \(regained.count) of its shards, \(returned.count) agents")
        }

        /// The owner of each assigned shard, from KV `mesh_shards`.
        func shardOwners() throws -> [Int: String] {
            let shards = try client.jetStream().keyValue("mesh_shards")
            var owners: [Int: String] = [:]
            for shard in 0..<64 {
                if let owner = (try? shards.get(String(shard))).flatMap({ $0 }).flatMap({ try? ShardAssignment(serializedBytes: $0.value) })?.nodeId {
                    owners[shard] = owner
                }
            }
            return owners
        }

        /// Runs `meshctl ARGUMENTS --nats-url <this mesh>` to its end.
        func meshctl(_ arguments: [String]) async throws -> (status: Int32?, output: String) {
            let out = "\(logs)/meshctl-\(UUID().uuidString).out"
            let child = try ChildProcess(
                executable: try MeshBinaries.path("meshctl"), arguments: arguments + ["--nats-url", nats.url], logPath: out,
                errorLogPath: out + ".err")
            _ = await TestEnvironment.waitUntil(timeout: .seconds(90)) { !child.isRunning }
            let status = await child.stop()
            let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            return (status, output + ((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? ""))
        }

        /// The leader's node table through `meshctl nodes ls -o json`.
        func nodes() async throws -> [String: [String: Any]] {
            let listed = try await meshctl(["nodes", "ls", "-o", "json"])
            let rows = (try? JSONSerialization.jsonObject(with: Data(listed.output.utf8)) as? [[String: Any]]) ?? []
            return Dictionary(rows.compactMap { row in (row["node"] as? String).map { ($0, row) } }) { first, _ in first }
        }

        func act(_ id: String, _ action: String, _ payload: String = "", timeout: Duration = .seconds(5)) async throws -> String {
            let reply = try await actions.act(
                try AgentID(id), action: action, payload: Array(payload.utf8), timeout: timeout, idempotent: ["get", "ping"].contains(action))
            return String(decoding: reply, as: UTF8.self)
        }

        /// ``act(_:_:_:timeout:)`` while a frozen worker still holds its subscriptions: NATS
        /// gives it a share of the requests (queue group per shard), which are not executed
        /// and time out (at most once), so the action is sent until another worker answers.
        func actPastFrozen(_ id: String, _ action: String, _ payload: String = "") async throws -> String? {
            for _ in 0..<20 {
                do { return try await act(id, action, payload, timeout: .seconds(1)) } catch let error as MeshError where error.code == .timeout {}
            }
            return nil
        }

        /// Every event of `id`'s timeline in stream `MESH_EVENTS`, oldest first.
        func timeline(_ id: String) async throws -> [Event] {
            let js = try client.jetStream()
            var config = ConsumerConfig(durableName: "timeline-\(UUID().uuidString.prefix(8))", filterSubject: "mesh.evt.agent.>")
            config.ackPolicy = .none
            let consumer = try js.addOrUpdateConsumer(stream: "MESH_EVENTS", config: config)
            defer { try? js.deleteConsumer(stream: "MESH_EVENTS", name: consumer.name) }
            let pull = try js.pullSubscribe(consumer)
            defer { try? pull.unsubscribe() }
            var events: [Event] = []
            while true {
                let batch = try await pull.fetch(batch: 1_000, expires: .milliseconds(500))
                if batch.isEmpty { return events }
                events += batch.compactMap { try? Event(serializedBytes: $0.payload) }.filter { $0.agentId == id }
            }
        }

        /// Stops every process (SIGTERM to all at once, then waits without blocking a thread).
        func shutdown() async {
            client?.close()
            for process in processes.values where process.isRunning { kill(process.pid, SIGTERM) }
            for process in processes.values { await process.stop(signal: SIGTERM, timeout: .seconds(5)) }
        }

        func stop() {
            client?.close()
            for process in processes.values { process.stop(signal: SIGTERM, timeout: .seconds(5)) }
            nats.stop()
            try? FileManager.default.removeItem(atPath: logs)
        }
    }

    @Test func agentsAnswerKeepStateAcrossAWorkerCrashAndFailOver() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-1")
        for index in 1...3 { try mesh.start(.agentWorker, id: "worker-\(index)") }
        try await mesh.connect()

        let ids = (0..<1_000).map { "counter-\($0)" }
        for id in ids { try mesh.create(id, kind: "counter") }
        for id in ids {
            let reply = try await mesh.act(id, "add", #"{"by":7}"#, timeout: .seconds(30))
            #expect(reply == #"{"value":7}"#, "agent \(id): \(reply)")
        }
        #expect(try await mesh.act("counter-0", "get") == #"{"value":7}"#)
        await #expect(throws: MeshError.self) { _ = try await mesh.act("no-such-agent", "get", timeout: .seconds(2)) }

        // Every agent's status names its worker; all three workers host agents.
        let placed = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            let nodes = ids.compactMap { id in (try? mesh.status.get(id)).flatMap { $0 }.flatMap { try? AgentRecord(serializedBytes: $0.value) } }
                .filter { $0.status == .running }.compactMap { $0.placement?.nodeId }
            return nodes.count == ids.count && Set(nodes) == ["worker-1", "worker-2", "worker-3"]
        }
        #expect(placed)

        // The same through meshctl: act, bad input, and the node list.
        let acted = try await mesh.meshctl(["act", "counter-5", "add", "--data", #"{"by":1}"#])
        #expect(acted.status == 0 && acted.output.trimmingCharacters(in: .whitespacesAndNewlines) == #"{"value":8}"#, "\(acted)")
        #expect(try await mesh.act("counter-5", "add", #"{"by":-1}"#) == #"{"value":7}"#)
        #expect(try await mesh.meshctl(["act", "Bad.Id", "get"]).status != 0)
        #expect(try await mesh.meshctl(["act", "no-such-agent", "get", "--timeout-ms", "2000"]).status != 0)
        // Agent counts come from the workers' heartbeats (every 250 ms): the last agents
        // started may reach the list a beat after their status.
        var nodes = try await mesh.nodes()
        _ = try await TestEnvironment.waitUntil(timeout: .seconds(5)) {
            nodes = try await mesh.nodes()
            return nodes.values.reduce(0) { $0 + ($1["agents"] as? Int ?? 0) } == ids.count
        }
        #expect(Set(nodes.keys) == ["worker-1", "worker-2", "worker-3"])
        #expect(nodes.values.reduce(0) { $0 + (($1["shards"] as? [Int])?.count ?? 0) } == 64)
        for (node, row) in nodes {
            let owned = (row["shards"] as? [Int])?.count ?? 0
            #expect((21...22).contains(owned), "\(node) owns \(owned) of 64 shards")
        }
        #expect(nodes.values.reduce(0) { $0 + ($1["agents"] as? Int ?? 0) } == ids.count)

        // Let the checkpoints land, then crash a worker: its agents answer from the others
        // with their counters intact.
        try await Task.sleep(for: .milliseconds(500))
        let victims = ids.filter { id in
            (try? mesh.status.get(id)).flatMap { $0 }.flatMap { try? AgentRecord(serializedBytes: $0.value) }?.placement?.nodeId == "worker-2"
        }
        #expect(victims.count > 200, "worker-2 hosts \(victims.count) agents")
        let crashedAt = ContinuousClock.now
        mesh.processes["worker-2"]!.kill9()
        // The crashed worker's agents, probed 32 at a time: when did the last one answer?
        let answeredAfter = try await withThrowingTaskGroup(of: Duration.self) { group in
            var latest = Duration.zero
            for (index, id) in victims.enumerated() {
                if index >= 32, let done = try await group.next() { latest = max(latest, done) }
                group.addTask {
                    let reply = try await mesh.act(id, "get", timeout: .seconds(15))
                    #expect(reply == #"{"value":7}"#, "agent \(id) lost state: \(reply)")
                    return ContinuousClock.now - crashedAt
                }
            }
            for try await done in group { latest = max(latest, done) }
            return latest
        }
        print("all \(victims.count) agents of the killed worker answering \(answeredAfter) after its SIGKILL")
        var recovered = 0
        for id in ids {
            let reply = try await mesh.act(id, "get", timeout: .seconds(15))
            if reply == #"{"value":7}"# { recovered += 1 } else { Issue.record("agent \(id) lost state: \(reply)") }
        }
        #expect(recovered == ids.count)

        // The timeline of a moved agent: placed and started (and maybe moved while the
        // workers joined), running on worker-2, then migrated from it (its node was lost)
        // and started again, restored, on its new owner.
        let timeline = try await mesh.timeline(victims[0])
        let shown = Comment(rawValue: "\(timeline.map { ($0.type, $0.nodeId, $0.attributes) })")
        #expect(timeline.first?.type == "placed" && timeline.count >= 4, shown)
        let last = timeline.suffix(2)
        #expect(last.map(\.type) == ["migrated", "started"], shown)
        if let migrated = last.first, let started = last.last {
            #expect(migrated.nodeId != "worker-2" && !migrated.nodeId.isEmpty && started.nodeId == migrated.nodeId, shown)
            #expect(migrated.attributes["from"] == "worker-2" && migrated.attributes["cause"] == "node_lost", shown)
            #expect(started.reason.hasSuffix("state restored"), shown)
        }
        await mesh.shutdown()
    }

    @Test func aJoiningWorkerTakesAQuarterOfTheShardsAndTheirAgentsKeepTheirState() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-1")
        for index in 1...3 { try mesh.start(.agentWorker, id: "worker-\(index)") }
        try await mesh.connect()
        let ids = (0..<200).map { "tally-\($0)" }
        for id in ids { try mesh.create(id, kind: "counter") }
        for (index, id) in ids.enumerated() {
            #expect(try await mesh.act(id, "add", #"{"by":\#(index)}"#, timeout: .seconds(30)) == #"{"value":\#(index)}"#)
        }

        // A fourth worker joins: after its hold-down it owns a quarter of the shards, each
        // worker 16; the agents there move to it with their counters (handed over by a final
        // checkpoint).
        let settled = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            let owners = (try? mesh.shardOwners()) ?? [:]
            return owners.count == 64 && Dictionary(grouping: owners.values, by: { $0 }).values.map(\.count).sorted() == [21, 21, 22]
        }
        #expect(settled, "three workers not spread 21, 21, 22: \((try? mesh.shardOwners()) ?? [:])")
        let before = try mesh.shardOwners()
        try mesh.start(.agentWorker, id: "worker-4")
        let joined = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            ((try? mesh.shardOwners()) ?? [:]).values.filter { $0 == "worker-4" }.count == 16
        }
        let owners = try mesh.shardOwners()
        #expect(joined, "worker-4 owns \(owners.values.filter { $0 == "worker-4" }.count) shards")
        for worker in ["worker-1", "worker-2", "worker-3", "worker-4"] {
            #expect(owners.values.filter { $0 == worker }.count == 16, "\(worker): \(owners)")
        }
        #expect(owners.allSatisfy { $0.value == "worker-4" || $0.value == before[$0.key] }, "a shard moved between old workers")
        for (index, id) in ids.enumerated() {
            #expect(try await mesh.act(id, "get", timeout: .seconds(15)) == #"{"value":\#(index)}"#, "agent \(id) lost state")
        }
        let movedHere = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            ids.contains { id in
                (try? mesh.status.get(id)).flatMap { $0 }.flatMap { try? AgentRecord(serializedBytes: $0.value) }?.placement?.nodeId == "worker-4"
            }
        }
        #expect(movedHere, "no agent runs on the new worker")
        await mesh.shutdown()
    }

    /// A worker frozen (SIGSTOP: alive, still connected, silent) with changes it has not
    /// checkpointed yet (its checkpoint period is long here) is declared dead after its
    /// misses and its shards move; its successor restores the last checkpoints (none) and
    /// changes them. When the frozen worker wakes up and learns of the move, it must drop its
    /// stale agents without checkpointing them: otherwise it would overwrite its successor's
    /// state, and the agents whose shards come back to it would answer with its counts.
    @Test func aWorkerDeclaredDeadDoesNotOverwriteItsSuccessorsCheckpoints() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        let ids = (0..<60).map { "stale-\($0)" }
        let (victims, frozenShards) = try await mesh.twoWorkersWithCounters(ids, worker2: ["MESH_CHECKPOINT_INTERVAL_MS": "60000"])

        for id in ids { #expect(try await mesh.act(id, "add", #"{"by":1}"#, timeout: .seconds(30)) == #"{"value":1}"#) }
        let frozen = try #require(mesh.processes["worker-2"])
        kill(frozen.pid, SIGSTOP)
        let moved = await TestEnvironment.waitUntil(timeout: .seconds(10)) { !mesh.owners().values.contains("worker-2") }
        #expect(moved, "a frozen worker kept its shards")
        for id in victims {
            #expect(try await mesh.actPastFrozen(id, "add", #"{"by":10}"#) == #"{"value":10}"#, "agent \(id)")
        }
        try await Task.sleep(for: .milliseconds(500))  // worker-1 checkpoints the new counts
        kill(frozen.pid, SIGCONT)

        // Awake, worker-2 heartbeats again and, after its hold-down, takes its share back:
        // a planned move, so worker-1 hands them over and worker-2 restores from KV.
        try await mesh.worker2TakesItsShareBack(held: frozenShards, victims: victims)
        for id in victims {
            #expect(try await mesh.act(id, "get", timeout: .seconds(15)) == #"{"value":10}"#, "agent \(id) lost its successor's count")
        }
        await mesh.shutdown()
    }

    /// Two workers with 60 counter agents (each at 0), spread over both: the mesh and the
    /// agents of worker-2.
    static func twoWorkersWithCounters() async throws -> (Mesh, victims: [String]) {
        let mesh = try await Mesh()
        do {
            return (mesh, try await Self.counters(on: mesh))
        } catch {
            mesh.stop()
            throw error
        }
    }

    private static func counters(on mesh: Mesh) async throws -> [String] {
        let ids = (0..<60).map { "counter-\($0)" }
        let (victims, _) = try await mesh.twoWorkersWithCounters(ids, heartbeatMisses: nil)
        #expect(victims.count >= 10, "worker-2 hosts too few of the agents")
        for id in ids { #expect(try await mesh.act(id, "get", timeout: .seconds(30)) == #"{"value":0}"#) }
        return victims
    }

    /// Sends one add of 1 to each of `ids` at once through `client`; returns how many
    /// were acknowledged per agent.
    static func addOnce(_ client: ActionClient, to ids: [String]) async -> [String: Int] {
        await withTaskGroup(of: (String, Bool).self) { group in
            for id in ids {
                group.addTask {
                    do {
                        _ = try await client.act(try AgentID(id), action: "add", payload: Array(#"{"by":1}"#.utf8), timeout: .seconds(10))
                        return (id, true)
                    } catch {
                        return (id, false)
                    }
                }
            }
            var acknowledged: [String: Int] = [:]
            for await (id, ok) in group where ok { acknowledged[id, default: 0] += 1 }
            return acknowledged
        }
    }

    /// A frozen worker keeps its TCP connection, so its subscriptions stay in their shards'
    /// queue groups and take a share of the requests after its shards moved. nats-server
    /// disconnects a client that stops answering its pings within a few seconds (mesh
    /// setting `ping_interval: 2s`, `ping_max: 2`; the default is minutes): then every
    /// request reaches the new owner.
    @Test func aFrozenWorkerStopsTakingRequestsSoonAfterItsShardsMove() async throws {
        let (mesh, victims) = try await Self.twoWorkersWithCounters()
        defer { mesh.stop() }

        let frozen = try #require(mesh.processes["worker-2"])
        let frozenAt = ContinuousClock.now
        kill(frozen.pid, SIGSTOP)
        defer { kill(frozen.pid, SIGCONT) }
        let moved = await TestEnvironment.waitUntil(timeout: .seconds(10)) { !mesh.owners().values.contains("worker-2") }
        #expect(moved, "a frozen worker kept its shards")
        // One attempt per request (not idempotent: never sent twice): a request that NATS
        // gives the frozen worker times out.
        func timedOut() async -> Int {
            var count = 0
            for id in victims {
                do {
                    _ = try await mesh.actions.act(try AgentID(id), action: "get", timeout: .seconds(1), idempotent: false)
                } catch let error as MeshError where error.code == .timeout {
                    count += 1
                } catch {
                    Issue.record("agent \(id): \(error)")
                }
            }
            return count
        }
        var passes: [Int] = []
        let served = await TestEnvironment.waitUntil(timeout: .seconds(40)) {
            passes.append(await timedOut())
            return passes.last == 0
        }
        #expect(served, "requests still time out 40 s after the freeze; timeouts per pass of \(victims.count): \(passes)")
        print("frozen worker: every request answered \(ContinuousClock.now - frozenAt) after the freeze; timeouts per pass: \(passes)")
        kill(frozen.pid, SIGCONT)
        await mesh.shutdown()
    }

    /// A woken worker must never acknowledge a write whose state it then drops (its shards
    /// moved while it was frozen). Writes reach it two ways while it is frozen, and both
    /// wait in its connection:
    /// - sent before the move, stamped with the epoch it still holds: it refuses every
    ///   request after a pause longer than its lease (1.5 heartbeat intervals) until it has
    ///   read the shard owners from KV again and released what it lost;
    /// - sent after the move (its subscriptions still take a share), stamped by the
    ///   client's `ShardDirectory` with the newer epoch, which it refuses.
    /// The clients send the refused writes again and the new owner runs them.
    @Test(arguments: [true, false])
    func aWokenWorkerAcknowledgesNoWriteItThenLoses(sentBeforeTheMove: Bool) async throws {
        let (mesh, victims) = try await Self.twoWorkersWithCounters()
        defer { mesh.stop() }
        let client = try await ActionClient.watchingShards(connection: mesh.client, subjects: try Subjects(), shardMap: try ShardMap())
        defer { client.stop() }

        let frozen = try #require(mesh.processes["worker-2"])
        kill(frozen.pid, SIGSTOP)
        defer { kill(frozen.pid, SIGCONT) }
        let early = sentBeforeTheMove ? Task { await Self.addOnce(client, to: victims) } : nil
        let moved = await TestEnvironment.waitUntil(timeout: .seconds(10)) { !((try? mesh.shardOwners()) ?? [:]).values.contains("worker-2") }
        #expect(moved, "a frozen worker kept its shards")
        // After the move: two adds per agent at once, while worker-2 still holds its
        // subscriptions (nats-server disconnects it only after about 4 s).
        let adds = early ?? Task { await Self.addOnce(client, to: victims + victims) }
        try await Task.sleep(for: .milliseconds(sentBeforeTheMove ? 500 : 1_500))
        kill(frozen.pid, SIGCONT)
        let acknowledged = await adds.value
        #expect(acknowledged.values.reduce(0, +) > 0, "no add was acknowledged")
        for id in victims {
            let value = try await mesh.act(id, "get", timeout: .seconds(15))
            #expect(value == #"{"value":\#(acknowledged[id] ?? 0)}"#, "agent \(id): \(acknowledged[id] ?? 0) adds acknowledged")
        }
        await mesh.shutdown()
    }

    /// A spec update restarts the agent (its old cell stops and checkpoints, a new one starts
    /// from that checkpoint): actions sent meanwhile are retried, never answered `not_found`,
    /// and the state carries over every restart.
    @Test func specUpdatesRestartTheAgentWithoutANotFoundInBetween() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-1")
        try mesh.start(.agentWorker, id: "worker-1")
        try await mesh.connect()
        try mesh.create("updated-1", kind: "counter")
        #expect(try await mesh.act("updated-1", "add", #"{"by":1}"#, timeout: .seconds(30)) == #"{"value":1}"#)

        let gets = Task { () -> (answers: Int, failures: [String]) in
            var answers = 0
            var failures: [String] = []
            while !Task.isCancelled {
                do {
                    let reply = try await mesh.act("updated-1", "get", timeout: .seconds(5))
                    if reply != #"{"value":1}"# { failures.append(reply) }
                    answers += 1
                } catch {
                    if !Task.isCancelled { failures.append("\(error)") }
                }
            }
            return (answers, failures)
        }
        for generation in 2...41 {
            var record = AgentRecord()
            record.spec = AgentSpec(id: "updated-1", kind: "counter", generation: UInt64(generation), labels: ["round": String(generation)])
            _ = try mesh.agents.put("updated-1", record.serializedBytes())
            try await Task.sleep(for: .milliseconds(25))
        }
        try await Task.sleep(for: .milliseconds(200))
        gets.cancel()
        let (answers, failures) = await gets.value
        #expect(failures.count == 0, "\(failures.count) of \(answers + failures.count) gets failed, e.g. \(failures.prefix(3))")
        #expect(answers > 40)
        await mesh.shutdown()
    }

    /// Deleting an agent removes its state: created again under the same id, right after
    /// (both changes usually reach the worker together), it starts from nothing. Its old
    /// incarnation was changed until just before the delete, so a checkpoint can be on its
    /// way while the state is deleted.
    @Test func anAgentDeletedAndCreatedAgainStartsWithoutItsOldState() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-1")
        try mesh.start(.agentWorker, id: "worker-1", extra: ["MESH_CHECKPOINT_INTERVAL_MS": "10"])
        try await mesh.connect()
        let ids = (0..<40).map { "reborn-\($0)" }
        for id in ids { try mesh.create(id, kind: "counter") }
        for round in 1...5 {
            for id in ids {
                let reply = try await mesh.act(id, "add", #"{"by":5}"#, timeout: .seconds(30))
                #expect(reply == #"{"value":5}"#, "round \(round), \(id): \(reply)")
            }
            let recreated = Int64(Date().timeIntervalSince1970 * 1000)
            for id in ids {
                _ = try await mesh.act(id, "add", #"{"by":1}"#)  // a checkpoint due as the delete comes
                try mesh.agents.delete(id)
                try mesh.create(id, kind: "counter")
            }
            // Both changes were handled once the worker reports the new incarnation running.
            let running = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
                ids.allSatisfy { id in
                    guard let record = (try? mesh.status.get(id)).flatMap({ $0 }).flatMap({ try? AgentRecord(serializedBytes: $0.value) }) else { return false }
                    return record.status == .running && record.statusChangedAtUnixMs >= recreated
                }
            }
            #expect(running, "round \(round)")
            for id in ids {
                let reply = try await mesh.act(id, "get", timeout: .seconds(10))
                #expect(reply == #"{"value":0}"#, "round \(round), \(id) kept its old state: \(reply)")
            }
        }
        await mesh.shutdown()
    }

    /// The same across workers: agents deleted and created again while their worker is
    /// frozen (so it deletes nothing) come up on the worker that takes their shards, where
    /// the old checkpoints are still in KV. They start from nothing, keep what they change
    /// there, and keep it when the frozen worker wakes up and takes most of their shards back.
    @Test func anAgentCreatedAgainWhileItsWorkerIsFrozenStartsWithoutItsOldState() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        let ids = (0..<60).map { "orphan-\($0)" }
        let (victims, frozenShards) = try await mesh.twoWorkersWithCounters(ids)
        for id in ids { #expect(try await mesh.act(id, "add", #"{"by":7}"#, timeout: .seconds(30)) == #"{"value":7}"#) }
        try await Task.sleep(for: .milliseconds(500))  // checkpointed

        let frozen = try #require(mesh.processes["worker-2"])
        kill(frozen.pid, SIGSTOP)
        for id in victims {
            try mesh.agents.delete(id)
            try mesh.create(id, kind: "counter")
        }
        let moved = await TestEnvironment.waitUntil(timeout: .seconds(10)) { !mesh.owners().values.contains("worker-2") }
        #expect(moved, "a frozen worker kept its shards")
        for id in victims {
            #expect(try await mesh.actPastFrozen(id, "get") == #"{"value":0}"#, "agent \(id) created again restored its old state")
            #expect(try await mesh.actPastFrozen(id, "add", #"{"by":3}"#) == #"{"value":3}"#, "agent \(id)")
        }
        try await Task.sleep(for: .milliseconds(500))  // worker-1 checkpoints the new counts
        kill(frozen.pid, SIGCONT)

        // Awake, worker-2 sees the deletes and creates it slept through, and takes its share
        // of the shards back (a planned move: worker-1 hands them over).
        try await mesh.worker2TakesItsShareBack(held: frozenShards, victims: victims)
        for id in victims {
            #expect(try await mesh.act(id, "get", timeout: .seconds(15)) == #"{"value":3}"#, "agent \(id) lost its new life's count")
        }
        for id in ids where !victims.contains(id) {
            #expect(try await mesh.act(id, "get", timeout: .seconds(15)) == #"{"value":7}"#, "agent \(id)")
        }
        await mesh.shutdown()
    }

    /// Adds acknowledged and attempted per agent by ``Mesh/keepAdding(to:while:)``.
    actor Tally {
        var acked: [String: Int] = [:]
        var attempted: [String: Int] = [:]
        var stopped = false
        func attempt(_ id: String) { attempted[id, default: 0] += 1 }
        func ack(_ id: String) { acked[id, default: 0] += 1 }
        func stop() { stopped = true }
    }

    /// Adds 1 to `ids` round-robin, one request at a time, while `operation` runs.
    static func keepAdding(_ mesh: Mesh, to ids: [String], while operation: () async throws -> Void) async throws -> Tally {
        let tally = Tally()
        let writer = Task {
            var index = 0
            while await !tally.stopped {
                let id = ids[index % ids.count]
                index += 1
                await tally.attempt(id)
                if (try? await mesh.act(id, "add", #"{"by":1}"#, timeout: .seconds(10))) != nil { await tally.ack(id) }
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        try await operation()
        try await Task.sleep(for: .milliseconds(300))
        await tally.stop()
        await writer.value
        return tally
    }

    /// Every acknowledged add survived (value ≥ acked; ≤ attempted, as an add whose reply was
    /// lost may still have run).
    static func expectNothingLost(_ mesh: Mesh, _ tally: Tally, base: (String) -> Int, _ what: String) async throws {
        let (acked, attempted) = (await tally.acked, await tally.attempted)
        #expect(acked.values.reduce(0, +) > 50, "too few writes during \(what) to prove anything: \(acked.values.reduce(0, +))")
        for (id, count) in attempted {
            let reply = try await mesh.act(id, "get", timeout: .seconds(15))
            let value = (try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Int])?["value"] ?? -1
            #expect(value >= base(id) + (acked[id] ?? 0) && value <= base(id) + count, "agent \(id) after \(what): \(value), acked \(acked[id] ?? 0) of \(count) adds on \(base(id))")
        }
    }

    /// A planned move loses nothing: while agents are being written, a drained node and a node
    /// stopped with SIGTERM hand each agent over with the state it had when it let go, not
    /// its last periodic checkpoint.
    @Test func drainAndAGracefulStopLoseNoAcknowledgedWrite() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-1")
        // Rare periodic checkpoints: only the hand-over can carry the newest state.
        for index in 1...3 { try mesh.start(.agentWorker, id: "worker-\(index)", extra: ["MESH_CHECKPOINT_INTERVAL_MS": "60000"]) }
        try await mesh.connect()
        let ids = (0..<64).map { "meter-\($0)" }
        for id in ids { try mesh.create(id, kind: "counter") }
        for (index, id) in ids.enumerated() { _ = try await mesh.act(id, "add", #"{"by":\#(index * 1000)}"#, timeout: .seconds(30)) }
        // Every worker past its hold-down and owning shards (a drain of an empty node would
        // prove nothing).
        let everyoneServes = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            let nodes = (try? await mesh.nodes()) ?? [:]
            return nodes.count == 3 && nodes.values.allSatisfy { ($0["shards"] as? [Int])?.isEmpty == false }
        }
        #expect(everyoneServes, "not every worker owns shards")
        let base = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0 * 1000) })

        // Drain worker-2 while writes go on.
        let drainTally = try await Self.keepAdding(mesh, to: ids) {
            let drained = try await mesh.meshctl(["nodes", "drain", "worker-2", "--timeout", "30"])
            #expect(drained.status == 0, "\(drained.output)")
        }
        let afterDrain = try await mesh.nodes()
        #expect((afterDrain["worker-2"]?["shards"] as? [Int]) == [], "\(afterDrain)")
        #expect(afterDrain["worker-2"]?["drained"] as? Bool == true)
        try await Self.expectNothingLost(mesh, drainTally, base: { base[$0]! }, "a drain")
        // Each agent of worker-2 was stopped there and migrated to another node (cause: drain).
        var drainedAgent: String?
        for id in ids where drainedAgent == nil {
            if try await mesh.timeline(id).contains(where: { $0.type == "migrated" && $0.attributes["from"] == "worker-2" }) { drainedAgent = id }
        }
        let drainedTimeline = try await mesh.timeline(try #require(drainedAgent, "no agent migrated from worker-2"))
        // (It may also have moved while the workers joined: only the move from worker-2 counts.)
        let migrated = drainedTimeline.filter { $0.type == "migrated" && $0.attributes["from"] == "worker-2" }
        #expect(migrated.count == 1 && migrated.first?.attributes["cause"] == "drain", "\(drainedTimeline.map { ($0.type, $0.nodeId, $0.attributes) })")
        #expect(drainedTimeline.contains { $0.type == "stopped" && $0.nodeId == "worker-2" })
        #expect(try await mesh.meshctl(["nodes", "drain", "no-such-node"]).status != 0)
        #expect(try await mesh.meshctl(["nodes", "drain", "Bad.Node"]).status != 0)

        // SIGTERM worker-3 while writes go on: it drains itself before it exits.
        var now: [String: Int] = [:]
        for id in ids {
            now[id] = (try? JSONSerialization.jsonObject(with: Data(try await mesh.act(id, "get").utf8)) as? [String: Int])?["value"]
        }
        let worker3 = mesh.processes["worker-3"]!
        let stopTally = try await Self.keepAdding(mesh, to: ids) {
            kill(worker3.pid, SIGTERM)
            #expect(await worker3.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
        }
        try await Self.expectNothingLost(mesh, stopTally, base: { now[$0]! }, "a graceful stop")
        #expect(worker3.logTail(maxBytes: 50_000).contains("draining before stop"))

        // Undrained, worker-2 wins shards back after its hold-down.
        #expect(try await mesh.meshctl(["nodes", "undrain", "worker-2"]).status == 0)
        let back = await TestEnvironment.waitUntil(timeout: .seconds(15)) {
            ((try? await mesh.nodes())?["worker-2"]?["shards"] as? [Int])?.isEmpty == false
        }
        #expect(back, "worker-2 got no shard back after undrain")
        await mesh.shutdown()
    }

    /// With a named group, and without one (the agent's own group, made at its first failure).
    @Test(arguments: ["flaky-group", ""])
    func anAgentFailingPastItsIntensityFailsItsGroupWithoutARestartStorm(group: String) async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-1")
        try mesh.start(.agentWorker, id: "worker-1")
        try await mesh.connect()
        try mesh.create("flaky", kind: "fail", group: group, maxRestarts: 2)
        _ = try await mesh.act("flaky", "ping", timeout: .seconds(30))  // placed and answering

        // Three failures within the period: two restarts allowed, the third escalates.
        for _ in 0..<3 {
            _ = try? await mesh.act("flaky", "fail", timeout: .seconds(5))
            _ = await TestEnvironment.waitUntil(timeout: .seconds(5)) {
                (try? await mesh.act("flaky", "ping", timeout: .milliseconds(200))) != nil
            }
        }
        let failed = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            guard let entry = try? mesh.status.get("flaky"), let record = try? AgentRecord(serializedBytes: entry.value) else { return false }
            return record.status == .failed
        }
        #expect(failed, "group not marked failed: \(mesh.processes["worker-1"]!.logTail(maxBytes: 2_000))")
        let final = try #require(try mesh.status.get("flaky").flatMap { try AgentRecord(serializedBytes: $0.value) })
        #expect(final.restartCount == 2, "restarted \(final.restartCount) times")
        // No restart storm: the agent stays down and answers `unavailable`.
        try await Task.sleep(for: .seconds(1))
        await #expect(throws: MeshError.self) { _ = try await mesh.act("flaky", "ping", timeout: .milliseconds(500)) }
        let restarts = try #require(try mesh.status.get("flaky")).revision
        try await Task.sleep(for: .seconds(1))
        #expect(try #require(try mesh.status.get("flaky")).revision == restarts)
        await mesh.shutdown()
    }

    @Test func fanoutOverALabelSelectorAndBadActionRequests() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        let postgres = try await PostgresServer.start()
        defer { postgres.stop() }
        try mesh.start(.registry, id: "registry-1", extra: ["MESH_POSTGRES_URL": postgres.connectionString])
        try mesh.start(.supervisor, id: "supervisor-1")
        try mesh.start(.agentWorker, id: "worker-1")
        try await mesh.connect()
        let registry = RegistryClient(connection: mesh.client, subjects: try Subjects(), shardMap: try ShardMap())
        _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { (try? await registry.list(limit: 1)) != nil }
        for index in 1...3 {
            _ = try await registry.create(AgentSpec(id: "expert-\(index)", kind: "echo", labels: ["role": "expert"]))
        }
        _ = try await registry.create(AgentSpec(id: "novice", kind: "echo", labels: ["role": "novice"]))
        _ = try await registry.create(
            AgentSpec(id: "panel", kind: "fanout", config: Array(#"{"selector": "role=expert", "mode": "all", "action": "say"}"#.utf8)))
        // Placement is asynchronous: an agent answers once its worker has loaded it.
        for id in ["expert-1", "expert-2", "expert-3", "novice", "panel"] {
            let placed = await TestEnvironment.waitUntil(timeout: .seconds(30)) { (try? await mesh.act(id, "ping", timeout: .seconds(2))) != nil }
            #expect(placed, "\(id) never answered")
        }

        let reply = try await mesh.act("panel", "ask", #"{"q":"price?"}"#, timeout: .seconds(10))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any])
        #expect(object["succeeded"] as? Int == 3, "\(reply)")
        #expect(object["ok"] as? Bool == true)
        let agents = Set((object["results"] as? [[String: Any]] ?? []).compactMap { $0["agent"] as? String })
        #expect(agents == ["expert-1", "expert-2", "expert-3"])

        // Bad requests on an action subject: an error reply, and the worker keeps serving.
        let shardMap = try ShardMap()
        let subjects = try Subjects()
        let panel = try AgentID("panel")
        let subject = subjects.action(shard: shardMap.shard(of: panel), agent: panel)
        for payload in [[UInt8](repeating: 0xFF, count: 64), Array(ActionRequest(agentId: "expert-1", action: "say").serializedBytes())] {
            let answer = try await mesh.client.request(subject, payload: payload, timeout: .seconds(5))
            let decoded = try ActionReply(serializedBytes: answer.payload)
            #expect(decoded.status == .error && decoded.error?.code == "invalid_argument", "\(decoded)")
        }
        #expect(try await mesh.act("panel", "ask", "{}", timeout: .seconds(10)).contains("succeeded"))
        await mesh.shutdown()
    }
}
