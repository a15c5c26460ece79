import ArgumentParser
import Foundation
import LocalServers
import Logging
import MeshClient
import MeshCore
import MeshProto
import Nats

/// `meshctl bench failover`: how fast a lost worker's agents answer again. Starts a mesh of
/// its own (nats-server with JetStream, a supervisor, `--workers` workers, from the
/// executables beside meshctl), creates `--agents` counter agents (written to KV
/// `mesh_agents` as the registry would), then `--runs` times: adds 1 to every agent of one
/// worker, waits until the periodic checkpoint wrote them all, SIGKILLs that worker and measures
///
/// - *placement*: SIGKILL → the shard table names no shard of the dead worker (detection,
///   planning and the KV write), and
/// - *recovery*: SIGKILL → every agent the dead worker hosted has answered again, probed
///   256 at a time (placement + take-over + state restore + the client's retries),
///
/// and checks each of those agents kept its count (*lost* counts the ones that did not).
/// A replacement worker with a new id joins before the next run. Percentiles over the runs.
struct BenchFailover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover", abstract: "SIGKILL workers repeatedly; time until their agents answer again (p50/p99).")

    @Option(name: .customLong("runs"), help: "Workers to kill, one after another.")
    var runs: Int = 20

    @Option(name: .customLong("workers"), help: "Workers running at any time.")
    var workers: Int = 3

    @Option(name: .customLong("agents"), help: "Counter agents spread over the workers.")
    var agents: Int = 1_000

    @Option(name: .customLong("heartbeat-interval-ms"), help: "Worker heartbeat period given to the supervisor and workers.")
    var heartbeatMs: Int = 250

    @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
    var output: OutputFormat = .table

    @Flag(name: .customLong("keep"), help: "Keep the temp directory with the processes' logs.")
    var keep = false

    func validate() throws {
        guard (1...1_000).contains(runs) else { throw ValidationError("--runs must be in 1...1000") }
        guard (2...16).contains(workers) else { throw ValidationError("--workers must be in 2...16") }
        guard (1...100_000).contains(agents) else { throw ValidationError("--agents must be in 1...100000") }
        guard (10...10_000).contains(heartbeatMs) else { throw ValidationError("--heartbeat-interval-ms must be in 10...10000") }
    }

    struct Run: Encodable {
        var worker: String
        var agents: Int
        var placementMs: Double
        var recoveryMs: Double
        var lost: Int
    }

    /// What a failover measurement needs.
    struct Settings: Sendable {
        var runs = 20
        var workers = 3
        var agents = 1_000
        var heartbeatMs = 250
        var keep = false
    }

    func run() async throws {
        let settings = Settings(runs: runs, workers: workers, agents: agents, heartbeatMs: heartbeatMs, keep: keep)
        let results = try await Self.measure(settings) { line in progress(line) }
        let placement = results.map(\.placementMs).sorted()
        let recovery = results.map(\.recoveryMs).sorted()
        func percentile(_ values: [Double], _ p: Double) -> Double { values[min(values.count - 1, Int((Double(values.count) * p).rounded(.up)) - 1)] }
        switch output {
        case .json:
            let summary: [String: Any] = [
                "runs": results.count, "workers": workers, "agents": agents, "heartbeatIntervalMs": heartbeatMs,
                "placementMs": ["p50": percentile(placement, 0.5), "p99": percentile(placement, 0.99), "max": placement.last!],
                "recoveryMs": ["p50": percentile(recovery, 0.5), "p99": percentile(recovery, 0.99), "max": recovery.last!],
                "lost": results.reduce(0) { $0 + $1.lost },
                "perRun": results.map { ["worker": $0.worker, "agents": $0.agents, "placementMs": $0.placementMs, "recoveryMs": $0.recoveryMs, "lost": $0.lost] },
            ]
            say(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        case .table:
            say(Table.render([
                ["FAILOVER (\(results.count) runs, \(workers) workers, \(agents) agents, heartbeat \(heartbeatMs) ms)", "P50", "P99", "MAX"],
                ["placement: SIGKILL → shards reassigned"] + [0.5, 0.99].map { String(format: "%.0f ms", percentile(placement, $0)) } + [String(format: "%.0f ms", placement.last!)],
                ["recovery: SIGKILL → all its agents answer"] + [0.5, 0.99].map { String(format: "%.0f ms", percentile(recovery, $0)) } + [String(format: "%.0f ms", recovery.last!)],
            ]))
            say("agents that lost their checkpointed count: \(results.reduce(0) { $0 + $1.lost })")
        }
    }

    /// Starts a mesh of its own and measures `settings.runs` failovers (see the type's doc).
    static func measure(_ settings: Settings, progress: (String) -> Void) async throws -> [Run] {
        let (runs, workers, agents, heartbeatMs, keep) = (settings.runs, settings.workers, settings.agents, settings.heartbeatMs, settings.keep)
        let bin = try LocalMesh.executableDirectory()
        let directory = try LocalHost.makeTempDirectory(prefix: "failover")
        defer {
            if keep { FileHandle.standardError.write(Data("bench: logs kept in \(directory)\n".utf8)) } else { try? FileManager.default.removeItem(atPath: directory) }
        }
        let nats = try await LocalNatsServer(directory: directory, port: try LocalHost.freePort(), monitorPort: try LocalHost.freePort())
        defer { nats.stop() }
        var processes: [String: ChildProcess] = [:]
        defer { for process in processes.values { process.kill9() } }
        func start(_ service: ServiceName, _ id: String) throws {
            processes[id] = try ChildProcess(
                executable: "\(bin)/\(service.rawValue)", arguments: [], logPath: "\(directory)/\(id).log",
                environment: [
                    "MESH_NATS_URL": nats.url, "MESH_INSTANCE_ID": id, "MESH_LOG_LEVEL": keep ? "debug" : "warning",
                    "MESH_HEARTBEAT_INTERVAL_MS": String(heartbeatMs),
                ])
        }
        try start(.supervisor, "supervisor-1")
        var live = (1...workers).map { "worker-\($0)" }
        for id in live { try start(.agentWorker, id) }

        var options = NatsOptions()
        options.servers = [nats.url]
        let client = try await NatsConnection.connect(options, logger: Logger(label: "meshctl"))
        defer { client.close() }
        let js = try client.jetStream()
        guard await LocalHost.waitUntil(timeout: .seconds(60), { (try? js.keyValue("mesh_shards")) != nil }) else {
            throw CLIError("the mesh did not create its buckets; see \(directory)")
        }
        let subjects = try Subjects()
        let (agentsKV, shards) = (try js.keyValue(subjects.agentsBucket), try js.keyValue(subjects.shardsBucket))
        let shardMap = try ShardMap()
        let table = try ShardDirectory(kv: shards, shardCount: shardMap.shardCount)
        let actions = ActionClient(connection: client, subjects: subjects, shardMap: shardMap, shards: table)
        let watching = Task { await table.run() }
        defer {
            table.stop()
            watching.cancel()
        }
        await table.waitUntilLoaded()
        let ids = try (0..<agents).map { try AgentID("failover-\($0)") }
        progress("creating \(agents) counter agents on \(workers) workers")
        for id in ids {
            var record = AgentRecord()
            record.spec = AgentSpec(id: id.rawValue, kind: "counter", generation: 1)
            _ = try agentsKV.put(id.rawValue, record.serializedBytes())
        }
        var counts = [AgentID: Int]()
        // Placed and started (a worker may own the shard before it has seen the new spec).
        _ = try await Self.concurrently(ids) { id in
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                do {
                    _ = try await actions.act(id, action: "get", timeout: .seconds(60))
                    return
                } catch let error as MeshError where error.code == .notFound && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }

        var results: [Run] = []
        for index in 0..<runs {
            let victim = live[index % live.count]
            // Where every agent runs now, once all workers have their shards.
            let fair = shardMap.shardCount / (2 * live.count)
            guard await LocalHost.waitUntil(timeout: .seconds(60), {
                let owners = Self.owners(table)
                return owners.count == live.count && owners.values.allSatisfy { $0.count >= fair }
            }) else {
                throw CLIError("the shards did not spread over \(live.count) workers")
            }
            let victimShards = Set(Self.owners(table)[victim] ?? [])
            let hosted = ids.filter { victimShards.contains(shardMap.shard(of: $0)) }
            let stateStream = Subjects.keyValueStream(bucket: subjects.stateBucket)
            let writtenBefore = try js.streamInfo(stateStream).state.lastSeq
            _ = try await Self.concurrently(hosted) { id in _ = try await actions.act(id, action: "add", payload: Array(#"{"by":1}"#.utf8), timeout: .seconds(10)) }
            for id in hosted { counts[id, default: 0] += 1 }
            // The periodic checkpoint (100 ms) lands: one write per changed agent. (A fixed
            // wait did not cover thousands of agents changed at once.)
            let checkpointed = await LocalHost.waitUntil(timeout: .seconds(30)) {
                ((try? js.streamInfo(stateStream).state.lastSeq) ?? 0) >= writtenBefore + UInt64(hosted.count)
            }
            guard checkpointed else { throw CLIError("the changed agents were not checkpointed within 30 s") }

            let killedAt = ContinuousClock.now
            processes[victim]!.kill9()
            let placement = Task {
                _ = await LocalHost.waitUntil(timeout: .seconds(30)) { !Self.owners(table).keys.contains(victim) }
                return ContinuousClock.now - killedAt
            }
            let expected = counts
            let answers = try await Self.concurrently(hosted) { id -> Bool in
                let reply = try await actions.act(id, action: "get", timeout: .seconds(30), idempotent: true)
                return String(decoding: reply, as: UTF8.self) == #"{"value":\#(expected[id] ?? 0)}"#
            }
            let recovery = ContinuousClock.now - killedAt
            let run = Run(
                worker: victim, agents: hosted.count, placementMs: (await placement.value).totalSeconds * 1000,
                recoveryMs: recovery.totalSeconds * 1000, lost: answers.filter { !$0 }.count)
            results.append(run)
            progress(String(format: "run %d: %@ (%d agents) placement %.0f ms, recovery %.0f ms, lost %d", index + 1, victim, run.agents, run.placementMs, run.recoveryMs, run.lost))

            // A replacement joins under a new id (a restarted node with the same id would
            // wait out a longer hold-down: the anti-flap rule).
            let replacement = "worker-r\(index + 1)"
            live[live.firstIndex(of: victim)!] = replacement
            try start(.agentWorker, replacement)
        }

        return results
    }

    /// The shards of each owner in KV `mesh_shards` now (from its watch).
    static func owners(_ table: ShardDirectory) -> [String: [Int]] {
        var owners: [String: [Int]] = [:]
        for (shard, owner) in table.all.enumerated() {
            if let node = owner.node { owners[node.rawValue, default: []].append(shard) }
        }
        return owners
    }

    /// Requests in flight while adding and probing. With 32, probing some 7 000 agents of a
    /// killed worker took longer than the take-over itself: the figure measured the prober.
    static let probes = 256

    /// Runs `body` over `items`, ``probes`` at a time; results in completion order.
    static func concurrently<T: Sendable>(_ items: [AgentID], _ body: @escaping @Sendable (AgentID) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: T.self) { group in
            var results: [T] = []
            for (index, item) in items.enumerated() {
                if index >= Self.probes, let done = try await group.next() { results.append(done) }
                group.addTask { try await body(item) }
            }
            for try await done in group { results.append(done) }
            return results
        }
    }

    private func progress(_ line: String) {
        if output == .table { FileHandle.standardError.write(Data("bench: \(line)\n".utf8)) }
    }
}
