import Foundation
import Logging
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Testing

/// Shard placement with the real `mesh-supervisor` and `mesh-agent-worker` executables:
/// spread over workers, failover when a worker dies, leader takeover with fencing epochs.
@Suite(.enabled(if: TestEnvironment.natsAvailable), .serialized)
struct PlacementTests {
    /// A small mesh of real processes against one nats-server.
    final class Mesh: @unchecked Sendable {
        let nats: NatsServer
        let logs: String
        var processes: [String: ChildProcess] = [:]

        init() async throws {
            nats = try await NatsServer.start()
            logs = try TestEnvironment.makeTempDirectory(prefix: "placement")
        }

        func start(_ service: ServiceName, id: String, extra: [String: String] = [:]) throws {
            var environment = ["MESH_NATS_URL": nats.url, "MESH_INSTANCE_ID": id, "MESH_LOG_LEVEL": "info"]
            environment.merge(extra) { _, new in new }
            processes[id] = try ChildProcess(
                executable: try MeshBinaries.path(service.rawValue), arguments: [], logPath: "\(logs)/\(id).log", environment: environment)
        }

        /// A client connection and the `mesh_shards` bucket, once the supervisor created it.
        func connectToShards() async throws -> (client: NatsConnection, js: JetStream, shards: KeyValue) {
            var options = NatsOptions()
            options.servers = [nats.url]
            let client = try await NatsConnection.connect(options, logger: Logger(label: "test"))
            let js = try client.jetStream()
            var bucket: KeyValue?
            _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
                bucket = try? js.keyValue("mesh_shards")
                return bucket != nil
            }
            guard let bucket else {
                client.close()
                throw MeshError(.unavailable, "the supervisor did not create mesh_shards")
            }
            return (client, js, bucket)
        }

        /// Stops every process (SIGTERM to all at once, then waits without blocking a thread).
        func shutdown() async {
            for process in processes.values where process.isRunning { kill(process.pid, SIGTERM) }
            for process in processes.values { await process.stop(signal: SIGTERM, timeout: .seconds(5)) }
        }

        func stop() {
            for process in processes.values { process.stop(signal: SIGTERM, timeout: .seconds(5)) }
            nats.stop()
            try? FileManager.default.removeItem(atPath: logs)
        }
    }

    static func owners(_ shards: KeyValue, count: Int) throws -> [Int: (node: String, epoch: UInt64)] {
        var result: [Int: (String, UInt64)] = [:]
        for shard in 0..<count {
            if let entry = try shards.get(String(shard)) {
                let assignment = try MeshProto.ShardAssignment(serializedBytes: entry.value)
                if !assignment.nodeId.isEmpty { result[shard] = (assignment.nodeId, assignment.epoch) }
            }
        }
        return result
    }

    @Test func shardsSpreadFailOverAndSurviveALeaderChange() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-a")
        try mesh.start(.supervisor, id: "supervisor-b")
        for index in 1...3 { try mesh.start(.agentWorker, id: "worker-\(index)") }
        let (client, js, shards) = try await mesh.connectToShards()
        defer { client.close() }

        // Every shard owned, spread evenly over the three workers (21, 21 and 22). A worker
        // that joins a moment after the others takes its shards after its hold-down: the
        // snapshot is taken once that has settled.
        let spread = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            guard let owners = try? Self.owners(shards, count: 64), owners.count == 64 else { return false }
            let counts = ["worker-1", "worker-2", "worker-3"].map { worker in owners.values.filter { $0.node == worker }.count }
            return counts.sorted() == [21, 21, 22]
        }
        #expect(spread, "shards not spread: \(mesh.processes["supervisor-a"]!.logTail(maxBytes: 1_500))")
        let before = try Self.owners(shards, count: 64)
        for worker in ["worker-1", "worker-2", "worker-3"] {
            let owned = before.values.filter { $0.node == worker }.count
            #expect((21...22).contains(owned), "\(worker) owns \(owned) shards")
        }

        // A worker dies: only its shards move, within about a second.
        let lost = Set(before.filter { $0.value.node == "worker-2" }.keys)
        let killedAt = ContinuousClock.now
        mesh.processes["worker-2"]!.kill9()
        let failedOver = await TestEnvironment.waitUntil(timeout: .seconds(15)) {
            guard let owners = try? Self.owners(shards, count: 64), owners.count == 64 else { return false }
            return !owners.values.contains { $0.node == "worker-2" }
        }
        let failoverTime = ContinuousClock.now - killedAt
        print("placement failover after SIGKILL of a worker: \(failoverTime)")
        #expect(failedOver)
        let after = try Self.owners(shards, count: 64)
        for (shard, owner) in before where !lost.contains(shard) {
            #expect(after[shard]?.node == owner.node, "shard \(shard) moved although its owner lives")
            #expect(after[shard]?.epoch == owner.epoch)
        }
        for shard in lost { #expect(after[shard]!.epoch > before[shard]!.epoch) }

        // The leader dies: the standby takes over and keeps placing (fenced by epochs).
        let leader = String(decoding: try #require(try js.keyValue("mesh_leases").get("supervisor")).value, as: UTF8.self)
        mesh.processes[leader]!.kill9()
        let standby = leader == "supervisor-a" ? "supervisor-b" : "supervisor-a"
        let tookOver = await TestEnvironment.waitUntil(timeout: .seconds(15)) {
            (try? js.keyValue("mesh_leases").get("supervisor")).flatMap { $0.map { String(decoding: $0.value, as: UTF8.self) } } == standby
        }
        #expect(tookOver, "standby did not take over: \(mesh.processes[standby]!.logTail(maxBytes: 1_500))")
        try mesh.start(.agentWorker, id: "worker-4")
        let rebalanced = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            (try? Self.owners(shards, count: 64))?.values.contains { $0.node == "worker-4" } ?? false
        }
        #expect(rebalanced, "the new leader did not give shards to a joining worker")

        // Fencing: every shard's history has strictly increasing epochs.
        for shard in 0..<64 {
            let history = try shards.history(String(shard)).compactMap { try? MeshProto.ShardAssignment(serializedBytes: $0.value) }
            #expect(zip(history, history.dropFirst()).allSatisfy { $0.epoch < $1.epoch }, "shard \(shard) epochs not increasing")
        }
        await mesh.shutdown()
    }

    /// With 40 allowed misses (dead after 10 s of silence), only the liveness probe can move
    /// a SIGKILLed worker's shards within 5 s: nats-server answers its probe subject with "no
    /// responders" once the process is gone. A SIGSTOPped worker still holds its connection,
    /// so its probe goes unanswered and it keeps its shards until the misses run out.
    @Test func aKilledWorkerIsDeadOnItsProbeAndAFrozenOneOnlyAfterItsMisses() async throws {
        let mesh = try await Mesh()
        defer { mesh.stop() }
        try mesh.start(.supervisor, id: "supervisor-a", extra: ["MESH_HEARTBEAT_MISSES": "40"])
        for index in 1...3 { try mesh.start(.agentWorker, id: "worker-\(index)") }

        let (client, _, shards) = try await mesh.connectToShards()
        defer { client.close() }
        let workers = ["worker-1", "worker-2", "worker-3"]
        let spread = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
            guard let owners = try? Self.owners(shards, count: 64), owners.count == 64 else { return false }
            return workers.allSatisfy { worker in owners.values.contains { $0.node == worker } }
        }
        #expect(spread, "shards not spread: \(mesh.processes["supervisor-a"]!.logTail(maxBytes: 1_500))")

        mesh.processes["worker-2"]!.kill9()
        let movedOnProbe = await TestEnvironment.waitUntil(timeout: .seconds(5)) {
            guard let owners = try? Self.owners(shards, count: 64), owners.count == 64 else { return false }
            return !owners.values.contains { $0.node == "worker-2" }
        }
        #expect(movedOnProbe, "a killed worker kept its shards: \(mesh.processes["supervisor-a"]!.logTail(maxBytes: 1_500))")

        let frozen = try #require(mesh.processes["worker-3"])
        kill(frozen.pid, SIGSTOP)
        defer { kill(frozen.pid, SIGCONT) }
        let frozenShards = try Self.owners(shards, count: 64).filter { $0.value.node == "worker-3" }
        #expect(!frozenShards.isEmpty)
        try await Task.sleep(for: .seconds(3))
        let stillOwned = try Self.owners(shards, count: 64).filter { $0.value.node == "worker-3" }
        #expect(Set(stillOwned.keys) == Set(frozenShards.keys), "a frozen but connected worker lost shards on its probe")
        let movedAfterMisses = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            guard let owners = try? Self.owners(shards, count: 64), owners.count == 64 else { return false }
            return !owners.values.contains { $0.node == "worker-3" }
        }
        #expect(movedAfterMisses, "a frozen worker kept its shards after its misses ran out")
        kill(frozen.pid, SIGCONT)
        await mesh.shutdown()
    }
}
