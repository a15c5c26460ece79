import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Synchronization
import Testing

/// Durable tasks across real processes: nats-server, PostgreSQL, `mesh-registry` (history
/// writer and query), `mesh-supervisor` and `mesh-agent-worker`s.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct TaskFlowTests {
    /// A mesh with a registry (and its PostgreSQL), a supervisor and workers.
    final class TaskMesh: @unchecked Sendable {
        let nats: NatsServer
        let postgres: PostgresServer
        let logs: String
        var processes: [String: ChildProcess] = [:]
        var environments: [String: [String: String]] = [:]
        var client: NatsConnection!
        var agents: KeyValue!
        var tasks: TaskClient!
        var js: JetStream!
        let workerEnvironment: [String: String]
        /// Task events seen by a core subscription (`mesh.evt.task.>`), in arrival order.
        let events = Mutex<[(state: String, record: TaskRecord)]>([])
        private var eventSubscription: NatsHandlerSubscription?

        init(workerEnvironment: [String: String] = [:]) async throws {
            nats = try await NatsServer.start()
            postgres = try await PostgresServer.start()
            logs = try TestEnvironment.makeTempDirectory(prefix: "tasks")
            self.workerEnvironment = workerEnvironment
        }

        func start(_ service: ServiceName, id: String) throws {
            var environment = ["MESH_NATS_URL": nats.url, "MESH_INSTANCE_ID": id, "MESH_LOG_LEVEL": "info"]
            if service == .registry { environment["MESH_POSTGRES_URL"] = postgres.connectionString }
            if service == .agentWorker { environment.merge(workerEnvironment) { _, new in new } }
            environments[id] = environment
            processes[id] = try ChildProcess(
                executable: try MeshBinaries.path(service.rawValue), arguments: [], logPath: "\(logs)/\(id).log", environment: environment)
        }

        /// Starts a registry, a supervisor and `workers` workers, then connects.
        func startAll(workers: Int) async throws {
            try start(.registry, id: "registry-1")
            try start(.supervisor, id: "supervisor-1")
            for index in stride(from: 1, through: workers, by: 1) { try start(.agentWorker, id: "worker-\(index)") }
            try await connect()
        }

        /// Starts a stopped or killed process again with its environment.
        func restart(_ id: String) throws { try processes[id]!.restart(environment: environments[id]!) }

        func connect() async throws {
            var options = NatsOptions()
            options.servers = [nats.url]
            client = try await NatsConnection.connect(options, logger: Logger(label: "test"))
            js = try client.jetStream()
            let ready = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
                (try? self.js.keyValue("mesh_shards")) != nil && (try? self.js.keyValue("mesh_task_cancel")) != nil
            }
            #expect(ready, "cluster resources not created")
            agents = try js.keyValue("mesh_agents")
            tasks = try TaskClient(connection: client, subjects: try Subjects(), shardMap: try ShardMap())
            eventSubscription = try client.subscribe("mesh.evt.task.>") { [weak self] message in
                guard let event = try? Event(serializedBytes: message.payload), let record = TaskEvents.record(of: event) else { return }
                self?.events.withLock { $0.append((event.type, record)) }
            }
            // The history answers (registry up, migrations applied).
            let history = await TestEnvironment.waitUntil(timeout: .seconds(30)) { (try? await self.tasks.list(limit: 1)) != nil }
            #expect(history, "task history not answering: \(processes["registry-1"]?.logTail(maxBytes: 2_000) ?? "")")
        }

        func create(_ id: String, kind: String, config: String = "{}") throws {
            var record = AgentRecord()
            record.spec = AgentSpec(id: id, kind: kind, generation: 1, config: Array(config.utf8), mailboxCapacity: 10_000)
            _ = try agents.put(id, record.serializedBytes())
        }

        /// Waits until an action on `id` answers (the agent is placed and running).
        func waitForAgent(_ id: String) async throws {
            let actions = ActionClient(connection: client, subjects: try Subjects(), shardMap: try ShardMap())
            let agent = try AgentID(id)
            let up = await TestEnvironment.waitUntil(timeout: .seconds(30)) {
                if (try? await actions.act(agent, action: "ping", payload: Array(#"{}"#.utf8), timeout: .milliseconds(500))) != nil { return true }
                return (try? await actions.act(agent, action: "sleep", payload: Array(#"{"ms":0}"#.utf8), timeout: .milliseconds(500))) != nil
            }
            #expect(up, "agent \(id) never answered")
        }

        func submit(_ agent: String, _ action: String, _ payload: String = "", priority: TaskPriority = .normal, deadline: Date? = nil,
                    maxAttempts: Int? = nil, key: String? = nil) async throws -> SubmittedTask {
            try await tasks.submit(
                TaskSubmission(
                    agent: try AgentID(agent), action: action, payload: Array(payload.utf8), priority: priority, deadline: deadline,
                    maxAttempts: maxAttempts, idempotencyKey: key))
        }

        /// Waits until the history has `id` in a terminal state.
        func terminal(_ id: String, timeout: Duration = .seconds(30)) async -> TaskRecord? {
            var found: TaskRecord?
            _ = await TestEnvironment.waitUntil(timeout: timeout) {
                if let record = try? await self.tasks.get(id), record.state.isTerminal { found = record }
                return found != nil
            }
            return found
        }

        /// Runs `meshctl` against this mesh: its exit status and standard output.
        func meshctl(_ arguments: [String]) async throws -> (status: Int32?, output: String) {
            let out = "\(logs)/meshctl-\(UUID().uuidString).out"
            let child = try ChildProcess(
                executable: try MeshBinaries.path("meshctl"), arguments: arguments + ["--nats-url", nats.url], logPath: out, errorLogPath: out + ".err")
            _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { !child.isRunning }
            let status = await child.stop()
            return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
        }

        func events(of id: String) -> [(state: String, record: TaskRecord)] { events.withLock { $0.filter { $0.record.taskId == id } } }

        func shutdown() async {
            try? eventSubscription?.unsubscribe()
            client?.close()
            for process in processes.values where process.isRunning { kill(process.pid, SIGTERM) }
            for process in processes.values { await process.stop(signal: SIGTERM, timeout: .seconds(5)) }
        }

        func stop() {
            client?.close()
            for process in processes.values { process.stop(signal: SIGTERM, timeout: .seconds(5)) }
            nats.stop()
            postgres.stop()
            try? FileManager.default.removeItem(atPath: logs)
        }
    }

    static let fastRetries = ["MESH_TASK_BACKOFF_BASE_MS": "200", "MESH_TASK_BACKOFF_MAX_MS": "2000", "MESH_TASK_ACK_WAIT_MS": "3000"]

    @Test func submitResultRetriesDeadLettersIdempotencyCancelDeadlineAndPriority() async throws {
        let mesh = try await TaskMesh(workerEnvironment: Self.fastRetries)
        defer { mesh.stop() }
        try await mesh.startAll(workers: 1)
        try mesh.create("echo-1", kind: "echo")
        try mesh.create("flaky", kind: "fail")
        try mesh.create("slow", kind: "work")
        try mesh.create("sorter", kind: "work")
        for id in ["echo-1", "flaky", "slow", "sorter"] { try await mesh.waitForAgent(id) }

        // Submit → result, recorded in the history with its timings.
        let echo = try await mesh.submit("echo-1", "say", #"{"hello":"tasks"}"#)
        let done = try #require(await mesh.terminal(echo.taskId))
        #expect(done.state == .succeeded && String(decoding: done.result, as: UTF8.self) == #"{"hello":"tasks"}"#, "\(done)")
        #expect(done.attempts == 1 && done.nodeId == "worker-1" && done.startedAtUnixMs > 0 && done.finishedAtUnixMs >= done.startedAtUnixMs)
        #expect(!echo.duplicate)

        // Idempotent resubmit: the same key returns the original id; one task, one execution.
        let first = try await mesh.submit("echo-1", "say", "once", key: "order-42")
        let again = try await mesh.submit("echo-1", "say", "once", key: "order-42")
        #expect(again.taskId == first.taskId && again.duplicate && !first.duplicate)
        let other = try await mesh.submit("echo-1", "say", "other", key: "order-43")
        #expect(other.taskId != first.taskId)
        #expect(await mesh.terminal(first.taskId)?.state == .succeeded)
        #expect(await mesh.terminal(other.taskId)?.state == .succeeded)
        try await Task.sleep(for: .milliseconds(300))
        #expect(mesh.events(of: first.taskId).filter { $0.state == "succeeded" }.count == 1)

        // A failing task: retried with backoff, then dead-lettered with its last error.
        let failing = try await mesh.submit("flaky", "reject", "", maxAttempts: 3)
        let dead = try #require(await mesh.terminal(failing.taskId))
        #expect(dead.state == .deadLettered && dead.attempts == 3 && dead.error?.code == "invalid_argument", "\(dead)")
        // Each attempt's start, from the records of its outcome (a short attempt has no
        // `running` event of its own).
        let runs = mesh.events(of: failing.taskId).filter { $0.state == "retrying" || $0.state == "dead_lettered" }.map { $0.record.startedAtUnixMs }
        #expect(runs.count == 3)
        if runs.count == 3 {
            // Backoff 200 ms then 400 ms nominal, at least half of each with jitter.
            #expect(runs[1] - runs[0] >= 100 && runs[2] - runs[1] >= 200, "\(runs)")
        }
        #expect(mesh.events(of: failing.taskId).filter { $0.state == "retrying" }.count == 2)
        let letters = try await mesh.tasks.deadLetters()
        let letter = try #require(letters.first { $0.deadLetter.task.taskId == failing.taskId })
        #expect(letter.deadLetter.attempts == 3 && letter.deadLetter.error?.code == "invalid_argument")
        // Re-run from the dead-letter queue: fresh attempts, out of the queue, recorded again.
        _ = try await mesh.tasks.retryDeadLetter(failing.taskId)
        #expect(try await mesh.tasks.deadLetters().contains { $0.deadLetter.task.taskId == failing.taskId } == false)
        let rerun = await TestEnvironment.waitUntil(timeout: .seconds(20)) {
            guard let record = try? await mesh.tasks.get(failing.taskId) else { return false }
            return record.rerun == 1 && record.state == .deadLettered
        }
        #expect(rerun)

        // Cancel: a queued task behind a long one never runs; the running one ends at once.
        let long = try await mesh.submit("slow", "sleep", #"{"ms":5000}"#)
        let queued = try await mesh.submit("slow", "sleep", #"{"ms":1}"#)
        let expiring = try await mesh.submit("slow", "sleep", #"{"ms":1}"#, deadline: Date().addingTimeInterval(0.5))
        // A task running past `--task-running-event-ms` is recorded as running.
        let longRunning = await TestEnvironment.waitUntil(timeout: .seconds(10)) { mesh.events(of: long.taskId).contains { $0.state == "running" } }
        #expect(longRunning)
        try await mesh.tasks.cancel(queued.taskId)
        #expect(await mesh.terminal(queued.taskId)?.state == .cancelled)
        let cancelledAt = ContinuousClock.now
        try await mesh.tasks.cancel(long.taskId)
        #expect(await mesh.terminal(long.taskId)?.state == .cancelled)
        #expect(ContinuousClock.now - cancelledAt < .seconds(4), "a running task's cancel waited for the task")
        #expect(!mesh.events(of: queued.taskId).contains { $0.state == "running" })
        // Deadline: it waited behind the long task past its deadline → expired, never run.
        let expired = try #require(await mesh.terminal(expiring.taskId))
        #expect(expired.state == .expired && expired.error?.code == "timeout", "\(expired)")
        #expect(!mesh.events(of: expiring.taskId).contains { $0.state == "running" })
        let late = try await mesh.submit("echo-1", "say", "late", deadline: Date().addingTimeInterval(-1))
        #expect(await mesh.terminal(late.taskId)?.state == .expired)

        // Priority: while the agent is busy, low, normal and high tasks queue up; they run
        // high first, then normal, then low (FIFO within a class).
        let blocker = try await mesh.submit("sorter", "sleep", #"{"ms":1500}"#)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) { mesh.events(of: blocker.taskId).contains { $0.state == "running" } }
        var submitted: [(String, String)] = []
        for (priority, name) in [(TaskPriority.low, "low"), (.normal, "normal"), (.high, "high")] {
            for index in 0..<3 {
                let task = try await mesh.submit("sorter", "sleep", #"{"ms":5}"#, priority: priority)
                submitted.append((task.taskId, "\(name)-\(index)"))
            }
        }
        var starts: [(start: Int64, name: String)] = []
        for (id, name) in submitted {
            let record = await mesh.terminal(id)
            #expect(record?.state == .succeeded)
            starts.append((record?.startedAtUnixMs ?? 0, name))
        }
        // One at a time, 5 ms each: start times are distinct and give the run order.
        let order = starts.sorted { $0.start < $1.start }.map(\.name)
        #expect(order == ["high-0", "high-1", "high-2", "normal-0", "normal-1", "normal-2", "low-0", "low-1", "low-2"], "\(order)")

        // History queries: by agent, by state, paginated.
        let sorterPage = try await mesh.tasks.list(agent: try AgentID("sorter"), limit: 4)
        #expect(sorterPage.tasks.count == 4 && sorterPage.nextCursor != nil)
        let rest = try await mesh.tasks.list(agent: try AgentID("sorter"), cursor: sorterPage.nextCursor, limit: 100)
        #expect(sorterPage.tasks.count + rest.tasks.count == 10 && rest.nextCursor == nil)
        #expect(Set((sorterPage.tasks + rest.tasks).map(\.taskId)).count == 10)
        let cancelledOnes = try await mesh.tasks.list(state: .cancelled)
        #expect(Set(cancelledOnes.tasks.map(\.taskId)) == [queued.taskId, long.taskId])
        await #expect(throws: MeshError.self) { _ = try await mesh.tasks.get("00000000-0000-7000-8000-000000000000") }
        await #expect(throws: MeshError.self) { _ = try await mesh.submit("echo-1", "say", String(repeating: "x", count: TaskRules.maxPayloadBytes + 1)) }

        // The same through meshctl.
        let submittedByCLI = try await mesh.meshctl(["tasks", "submit", "echo-1", "say", "--data", "hi", "--key", "cli-1", "--wait", "-o", "json"])
        #expect(submittedByCLI.status == 0, "\(submittedByCLI.output)")
        let cliRecord = try JSONSerialization.jsonObject(with: Data(submittedByCLI.output.utf8)) as? [String: Any] ?? [:]
        #expect(cliRecord["state"] as? String == "succeeded" && cliRecord["result"] as? String == "hi", "\(cliRecord)")
        let cliID = try #require(cliRecord["task_id"] as? String)
        let repeated = try await mesh.meshctl(["tasks", "submit", "echo-1", "say", "--data", "hi", "--key", "cli-1", "-o", "json"])
        #expect(repeated.output.contains(cliID) && repeated.output.contains("\"duplicate\":true"), "\(repeated.output)")
        let got = try await mesh.meshctl(["tasks", "get", cliID, "-o", "json"])
        #expect(got.status == 0 && got.output.contains("\"succeeded\""))
        let listed = try await mesh.meshctl(["tasks", "ls", "--agent", "sorter", "--status", "succeeded", "-o", "json"])
        #expect((try JSONSerialization.jsonObject(with: Data(listed.output.utf8)) as? [[String: Any]])?.count == 10, "\(listed.output)")
        let dlq = try await mesh.meshctl(["tasks", "dlq", "ls", "-o", "json"])
        #expect(dlq.status == 0 && dlq.output.contains(failing.taskId), "\(dlq.output)")
        #expect(try await mesh.meshctl(["tasks", "cancel", "not-a-task-id"]).status != 0)
        #expect(try await mesh.meshctl(["tasks", "submit", "Bad.Agent", "say"]).status != 0)
        await mesh.shutdown()
    }

    @Test func aTaskInFlightWhenItsWorkerDiesCompletesOnceFromTheClientsView() async throws {
        let mesh = try await TaskMesh(workerEnvironment: Self.fastRetries)
        defer { mesh.stop() }
        try await mesh.startAll(workers: 2)
        try mesh.create("mover", kind: "work")
        try await mesh.waitForAgent("mover")

        let task = try await mesh.submit("mover", "sleep", #"{"ms":1500}"#)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) { mesh.events(of: task.taskId).contains { $0.state == "running" } }
        let owner = try #require(mesh.events(of: task.taskId).first { $0.state == "running" }?.record.nodeId)
        // The owner dies mid-task: the shard moves, the task is redelivered to the new owner.
        mesh.processes[owner]!.kill9()
        let record = try #require(await mesh.terminal(task.taskId, timeout: .seconds(30)))
        #expect(record.state == .succeeded && record.nodeId != owner && record.attempts == 2, "\(record)")
        try await Task.sleep(for: .milliseconds(500))
        // One terminal state, one result, from the client's view.
        let terminals = mesh.events(of: task.taskId).filter { TaskState(name: $0.state)?.isTerminal == true }
        #expect(terminals.count == 1, "\(terminals.map(\.state))")
        #expect(try await mesh.tasks.list(agent: try AgentID("mover")).tasks.count == 1)
        await mesh.shutdown()
    }

    /// The shard consumers keep their state in nats-server's memory: a restarted server has
    /// none, and the workers create them again. A task running when the server went down and
    /// one submitted afterwards both complete.
    @Test func tasksFlowAgainAfterNatsServerRestarts() async throws {
        let mesh = try await TaskMesh(workerEnvironment: Self.fastRetries)
        defer { mesh.stop() }
        try await mesh.startAll(workers: 1)
        try mesh.create("steady", kind: "work")
        try await mesh.waitForAgent("steady")
        let before = try await mesh.submit("steady", "sleep", #"{"ms":0}"#)
        #expect(await mesh.terminal(before.taskId)?.state == .succeeded)

        let running = try await mesh.submit("steady", "sleep", #"{"ms":1500}"#)
        _ = await TestEnvironment.waitUntil(timeout: .seconds(10)) { mesh.events(of: running.taskId).contains { $0.state == "running" } }
        mesh.nats.kill()
        try await mesh.nats.restart()
        // Submitted once JetStream answers again (the client retries within its horizon).
        let after = try await mesh.submit("steady", "sleep", #"{"ms":0}"#)
        let afterRecord = await mesh.terminal(after.taskId, timeout: .seconds(60))
        #expect(afterRecord?.state == .succeeded, "\(String(describing: afterRecord)) \(mesh.processes["worker-1"]!.logTail(maxBytes: 3_000))")
        let runningRecord = await mesh.terminal(running.taskId, timeout: .seconds(60))
        #expect(runningRecord?.state == .succeeded, "\(String(describing: runningRecord))")
        await mesh.shutdown()
    }

    /// A worker starting over shard consumers that an older worker left on file storage runs
    /// their tasks: nats-server 2.12 takes the new storage as an update, newer servers refuse
    /// it and the worker replaces the consumer.
    @Test func fileConsumersOfAnOlderWorkerAreReplaced() async throws {
        let mesh = try await TaskMesh(workerEnvironment: Self.fastRetries)
        defer { mesh.stop() }
        try await mesh.startAll(workers: 0)
        let subjects = try Subjects()
        let shard = try ShardMap().shard(of: try AgentID("upgraded"))
        for each in 0..<ShardMap.defaultShardCount {
            var config = ConsumerConfig(durableName: subjects.taskConsumer(shard: each), filterSubject: subjects.taskWildcard(shard: each))
            config.ackWait = .seconds(3)
            try mesh.js.addOrUpdateConsumer(stream: subjects.tasksStream, config: config)
        }
        #expect(try mesh.js.consumerInfo(stream: subjects.tasksStream, name: subjects.taskConsumer(shard: shard)).memoryStorage == false)
        try mesh.create("upgraded", kind: "work")
        // Stored before any worker runs: it waits in the stream for the replaced consumer.
        let queued = try await mesh.submit("upgraded", "sleep", #"{"ms":0}"#)
        try mesh.start(.agentWorker, id: "worker-1")
        try await mesh.waitForAgent("upgraded")
        let record = await mesh.terminal(queued.taskId, timeout: .seconds(60))
        #expect(record?.state == .succeeded, "\(String(describing: record)) \(mesh.processes["worker-1"]!.logTail(maxBytes: 3_000))")
        #expect(try mesh.js.consumerInfo(stream: subjects.tasksStream, name: subjects.taskConsumer(shard: shard)).memoryStorage)
        await mesh.shutdown()
    }
}
