import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import MeshTesting
import Nats
@testable import RegistryService
import Synchronization
import Testing

/// The registry records the tasks still waiting in `MESH_TASKS` (their submitters record
/// nothing): read from the stream behind a lag, one `task.submitted` event per task.
@Suite(.enabled(if: TestEnvironment.natsAvailable), .serialized)
struct WaitingTaskTests {
    @Test func tasksStillStoredPastTheLagAreRecordedOnceAcrossInstances() async throws {
        let streams = try await TaskStreams.start()
        defer { streams.stop() }
        let (nats, js, subjects, tasks) = (streams.nats, streams.js, streams.subjects, streams.tasks)
        let seen = Mutex<[TaskRecord]>([])
        let events = try nats.subscribe(subjects.event(.taskSubmitted)) { message in
            if let event = try? Event(serializedBytes: message.payload), let record = TaskEvents.record(of: event) {
                seen.withLock { $0.append(record) }
            }
        }
        defer { try? events.unsubscribe() }
        try nats.flush(timeout: .seconds(5))

        // Nobody runs these tasks; one undecodable message sits between them.
        var ids: [String] = []
        for index in 0..<3 {
            ids.append(try await tasks.submit(TaskSubmission(agent: try AgentID("waiting-\(index)"), action: "run")).taskId)
        }
        _ = try await js.publish(subjects.task(shard: 0, agent: try AgentID("junk")), payload: [0xff, 0xff, 0xff])
        ids.append(try await tasks.submit(TaskSubmission(agent: try AgentID("waiting-3"), action: "run", payload: [1, 2])).taskId)

        let logger = Logger(label: "test")
        let first = WaitingTaskRecorder(js: js, subjects: subjects, logger: logger)
        #expect(try await first.recordWaiting() == 0, "a task younger than the lag is not recorded yet")
        let later = Date().addingTimeInterval(Double(WaitingTaskRecorder.lag.totalMilliseconds) / 1000 + 1)
        #expect(try await first.recordWaiting(now: later) == 4)
        #expect(try await first.recordWaiting(now: later) == 0, "each stored task is read once")
        // Another registry instance reads the stream too; the stream stores each event once.
        let second = WaitingTaskRecorder(js: js, subjects: subjects, logger: logger)
        #expect(try await second.recordWaiting(now: later) == 4)
        try js.publishAsyncComplete(timeout: .seconds(5))

        let all = await TestEnvironment.waitUntil(timeout: .seconds(5)) { seen.withLock { $0.count } >= 8 }
        #expect(all)
        let records = seen.withLock { $0 }
        #expect(Set(records.map(\.taskId)) == Set(ids))
        #expect(records.allSatisfy { $0.state == .submitted && $0.submittedAtUnixMs > 0 })
        #expect(records.first { $0.taskId == ids[3] }?.agentId == "waiting-3")
        let stored = try js.streamInfo(subjects.eventsStream).state.messages
        #expect(stored == 4, "two instances, one stored event per task (Nats-Msg-Id); \(stored) stored")

        // The stream created again numbers from 1 anew: the recorder starts over with it.
        try js.deleteStream(subjects.tasksStream)
        _ = try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 64, logger: logger)
        #expect(try await first.recordWaiting(now: later) == 0)
        let fresh = try await tasks.submit(TaskSubmission(agent: try AgentID("waiting-4"), action: "run")).taskId
        let afterwards = Date().addingTimeInterval(Double(WaitingTaskRecorder.lag.totalMilliseconds) / 1000 + 1)
        #expect(try await first.recordWaiting(now: afterwards) == 1)
        let recordedFresh = await TestEnvironment.waitUntil(timeout: .seconds(5)) { seen.withLock { $0.contains { $0.taskId == fresh } } }
        #expect(recordedFresh)
    }

    /// End to end: `mesh-registry` lists a task nobody runs as `submitted` in the history.
    @Test(.enabled(if: TestEnvironment.postgresAvailable)) func theHistoryListsAWaitingTask() async throws {
        let harness = try await RegistryHarness.start()
        defer { harness.stop() }
        try await harness.startRegistry()
        let tasks = try TaskClient(connection: harness.connection, subjects: harness.subjects, shardMap: harness.shardMap)
        let submitted = try await tasks.submit(TaskSubmission(agent: try AgentID("nobody-runs-me"), action: "run", priority: .high))
        var found: TaskRecord?
        let listed = try await TestEnvironment.waitUntil(timeout: .seconds(15)) {
            found = try? await tasks.get(submitted.taskId)
            return found != nil
        }
        #expect(listed, "\(harness.logTail())")
        #expect(found?.state == .submitted)
        #expect(found?.priority == .high)
        #expect(found?.attempts == 0)
    }
}
