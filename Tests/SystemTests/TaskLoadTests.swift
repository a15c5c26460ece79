import Foundation
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import Nats
import Synchronization
import Testing

/// Durable tasks under load and failures: workers SIGKILLed every 5 s, PostgreSQL down for 10 s.
///
/// `MESH_TASK_LOAD_COUNT` sets how many tasks the kill test submits (default 5 000, CI-sized;
/// the issue's 20 000 runs with `MESH_TASK_LOAD_COUNT=20000`).
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct TaskLoadTests {
    typealias TaskMesh = TaskFlowTests.TaskMesh

    static var loadCount: Int { Int(ProcessInfo.processInfo.environment["MESH_TASK_LOAD_COUNT"] ?? "") ?? 5_000 }

    /// Submits `count` echo tasks over `agents` agents, at most `concurrency` at a time.
    /// - Returns: task id → the payload it was submitted with.
    static func submitAll(
        _ mesh: TaskMesh, count: Int, agents: [String], concurrency: Int = 64, submittedCounter: SharedCount? = nil
    ) async throws -> [String: String] {
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            var ids: [String: String] = [:]
            var next = 0
            func add() {
                let index = next
                next += 1
                group.addTask {
                    let payload = #"{"n":\#(index)}"#
                    let agent = agents[index % agents.count]
                    // A submission may meet a moment without JetStream leader or connection: the
                    // client retries within its horizon; a failure here fails the test.
                    let task = try await mesh.submit(agent, "say", payload, key: "load-\(index)")
                    submittedCounter?.add(1)
                    return (task.taskId, payload)
                }
            }
            for _ in 0..<min(concurrency, count) { add() }
            while let (id, payload) = try await group.next() {
                ids[id] = payload
                if next < count { add() }
            }
            return ids
        }
    }

    /// Every task of the history, page by page.
    static func history(_ mesh: TaskMesh) async throws -> [TaskRecord] {
        var all: [TaskRecord] = []
        var cursor: String?
        repeat {
            let page = try await mesh.tasks.list(cursor: cursor, limit: 1_000)
            all += page.tasks
            cursor = page.nextCursor
        } while cursor != nil
        return all
    }

    /// Succeeded events per task id, read back from stream `MESH_EVENTS`.
    static func succeededEvents(_ mesh: TaskMesh) async throws -> [String: Int] {
        var config = ConsumerConfig(durableName: "test-succeeded", filterSubject: "mesh.evt.task.succeeded")
        config.ackPolicy = .none
        _ = try mesh.js.addOrUpdateConsumer(stream: "MESH_EVENTS", config: config)
        let consumer = try mesh.js.pullSubscribe(stream: "MESH_EVENTS", consumer: "test-succeeded")
        defer { try? consumer.unsubscribe() }
        var counts: [String: Int] = [:]
        while true {
            let batch = try await consumer.fetch(batch: 1_000, expires: .milliseconds(500))
            if batch.isEmpty { break }
            for message in batch {
                if let event = try? Event(serializedBytes: message.payload), let record = TaskEvents.record(of: event) {
                    counts[record.taskId, default: 0] += 1
                }
            }
        }
        return counts
    }

    @Test func workersKilledEverySecondsNoTaskLostNoResultRecordedTwice() async throws {
        let count = Self.loadCount
        let mesh = try await TaskMesh(workerEnvironment: ["MESH_TASK_ACK_WAIT_MS": "2000", "MESH_TASK_BACKOFF_BASE_MS": "100"])
        defer { mesh.stop() }
        try await mesh.startAll(workers: 3)
        let agents = (0..<60).map { "load-\($0)" }
        for id in agents { try mesh.create(id, kind: "echo") }
        for id in agents { try await mesh.waitForAgent(id) }

        // A worker is SIGKILLed every 5 s (round robin) and started again a second later.
        let started = ContinuousClock.now
        let kills = SharedCount()
        let killing = SharedCount(1)
        let killer = Task {
            var victim = 0
            while killing.value == 1 {
                try? await Task.sleep(for: .seconds(5))
                guard killing.value == 1 else { break }
                let id = "worker-\(victim % 3 + 1)"
                victim += 1
                mesh.processes[id]!.kill9()
                kills.add(1)
                try? await Task.sleep(for: .seconds(1))
                try? mesh.restart(id)
            }
        }
        let submitted = try await Self.submitAll(mesh, count: count, agents: agents)
        let submitTime = ContinuousClock.now - started
        #expect(submitted.count == count)

        // Every task reaches a terminal state in the history (kills go on meanwhile, at least two).
        var records: [TaskRecord] = []
        let allTerminal = await TestEnvironment.waitUntil(timeout: .seconds(Int64(60 + count / 50))) {
            if kills.value < 2 { return false }
            guard let all = try? await Self.history(mesh) else { return false }
            records = all
            return all.count >= count && all.allSatisfy { $0.state.isTerminal }
        }
        killing.add(-1)
        await killer.value
        let doneTime = ContinuousClock.now - started
        let byState = Dictionary(grouping: records, by: { $0.state.name }).mapValues(\.count)
        if !allTerminal {
            // Which shard consumers hold the rest, and what the workers said.
            for shard in 0..<64 {
                if let info = try? mesh.js.consumerInfo(stream: "MESH_TASKS", name: "tasks-\(shard)"), info.numPending > 0 || info.numAckPending > 0 {
                    print("shard \(shard): pending \(info.numPending) ack-pending \(info.numAckPending) waiting \(info.numWaiting) redelivered \(info.numRedelivered)")
                }
            }
            for index in 1...3 {
                let log = mesh.processes["worker-\(index)"]!.logTail(maxBytes: 200_000).split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") }
                print("worker-\(index): \(log.suffix(5).joined(separator: "\n"))")
            }
        }
        #expect(allTerminal, "not all terminal after \(doneTime): \(byState)")
        // None lost, none invented, one row and one result per task — the submitted one.
        #expect(records.count == count)
        #expect(Set(records.map(\.taskId)) == Set(submitted.keys))
        let wrong = records.filter { $0.state == .succeeded && String(decoding: $0.result, as: UTF8.self) != submitted[$0.taskId] }
        #expect(wrong.isEmpty, "\(wrong.count) results differ from their payload")
        #expect(byState["succeeded"] == count, "\(byState)")

        // At-least-once: executions that ran twice (a kill between the result and its ack).
        let executions = try await Self.succeededEvents(mesh)
        let duplicated = executions.values.reduce(0) { $0 + max(0, $1 - 1) }
        #expect(Set(executions.keys) == Set(submitted.keys))
        print(
            "task kill test: \(count) tasks, \(kills.value) worker kills, submitted in \(submitTime), all terminal after \(doneTime); states \(byState); duplicated executions \(duplicated) (tasks run twice: \(executions.values.filter { $0 > 1 }.count)); history rows \(records.count)"
        )
        await mesh.shutdown()
    }

    @Test func postgresDownForTenSecondsSubmissionsFlowAndTheHistoryCatchesUp() async throws {
        let count = 2_000
        let mesh = try await TaskMesh()
        defer { mesh.stop() }
        try await mesh.startAll(workers: 1)
        let agents = (0..<20).map { "pg-\($0)" }
        for id in agents { try mesh.create(id, kind: "echo") }
        for id in agents { try await mesh.waitForAgent(id) }

        let submittedSoFar = SharedCount()
        let outage = Task {
            try? await Task.sleep(for: .milliseconds(300))
            mesh.postgres.kill()
            let atKill = submittedSoFar.value
            try? await Task.sleep(for: .seconds(10))
            let duringOutage = submittedSoFar.value - atKill
            try? await mesh.postgres.restart()
            return duringOutage
        }
        let submitted = try await Self.submitAll(mesh, count: count, agents: agents, concurrency: 8, submittedCounter: submittedSoFar)
        let duringOutage = await outage.value
        #expect(submitted.count == count)
        #expect(duringOutage > 0, "no submission completed while PostgreSQL was down")

        var records: [TaskRecord] = []
        let caughtUp = await TestEnvironment.waitUntil(timeout: .seconds(60)) {
            guard let all = try? await Self.history(mesh) else { return false }
            records = all
            return all.count == count && all.allSatisfy { $0.state == .succeeded }
        }
        #expect(
            caughtUp,
            "history has \(records.count) of \(count) tasks: \(Dictionary(grouping: records, by: { $0.state.name }).mapValues(\.count)); \(mesh.processes["registry-1"]!.logTail(maxBytes: 3_000))")
        #expect(Set(records.map(\.taskId)) == Set(submitted.keys))
        print("postgres outage test: \(duringOutage) submissions completed during the 10 s outage; history complete with \(records.count) tasks")
        await mesh.shutdown()
    }
}

/// A counter shared between test tasks.
final class SharedCount: Sendable {
    private let storage: Atomic<Int>
    init(_ initial: Int = 0) { storage = Atomic(initial) }
    func add(_ delta: Int) { storage.add(delta, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}
