import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import MeshTesting
import Nats
import Synchronization
import Testing

/// `TaskClient.submit(_:completion:)`: the callback form a bulk submitter uses.
@Suite(.enabled(if: TestEnvironment.natsAvailable))
struct TaskSubmitTests {
    /// Submits with the callback form and returns every completion it got (it must get one).
    static func submit(_ tasks: TaskClient, _ submission: TaskSubmission) async -> [Result<SubmittedTask, MeshError>] {
        let results = Mutex<[Result<SubmittedTask, MeshError>]>([])
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            tasks.submit(submission) { result in
                let first = results.withLock { all in
                    all.append(result)
                    return all.count == 1
                }
                if first { continuation.resume() }
            }
        }
        try? await Task.sleep(for: .milliseconds(100))  // a second completion would arrive meanwhile
        return results.withLock { $0 }
    }

    static func code(_ results: [Result<SubmittedTask, MeshError>]) -> MeshError.Code? {
        guard results.count == 1, case .failure(let error) = results[0] else { return nil }
        return error.code
    }

    @Test func callbackSubmissionsStoreTheTaskOnceAndCompleteOnce() async throws {
        let streams = try await TaskStreams.start()
        defer { streams.stop() }
        let (js, subjects, tasks) = (streams.js, streams.subjects, streams.tasks)
        let agent = try AgentID("submitter-1")

        // Without a key: published at once; the stream holds the envelope under its id.
        let plain = await Self.submit(tasks, TaskSubmission(agent: agent, action: "run", payload: [7, 8], priority: .low))
        #expect(plain.count == 1)
        let submitted = try #require(try plain.first?.get())
        #expect(!submitted.duplicate)
        let stored = try #require(try await js.storedMessages(stream: subjects.tasksStream, from: 1, batch: 10).first)
        #expect(stored.subject == subjects.task(shard: streams.shardMap.shard(of: agent), agent: agent))
        let envelope = try TaskEnvelope(serializedBytes: stored.payload)
        #expect(envelope.taskId == submitted.taskId && envelope.payload == [7, 8] && envelope.priority == .low && envelope.maxAttempts == 5)

        // With a key: the second submission gets the first one's id, and nothing more is stored.
        let keyed = TaskSubmission(agent: agent, action: "run", idempotencyKey: "order-42")
        let first = try #require(try await Self.submit(tasks, keyed).first?.get())
        let again = await Self.submit(tasks, keyed)
        #expect(again.count == 1)
        let repeated = try #require(try again.first?.get())
        #expect(repeated.taskId == first.taskId && repeated.duplicate)
        #expect(try js.streamInfo(subjects.tasksStream).state.messages == 2)

        // Bad input completes at once with the error, nothing stored.
        let tooLarge = await Self.submit(tasks, TaskSubmission(agent: agent, action: "run", payload: [UInt8](repeating: 0, count: TaskRules.maxPayloadBytes + 1)))
        #expect(tooLarge.count == 1)
        #expect(Self.code(tooLarge) == .tooLarge)
        let badKey = await Self.submit(tasks, TaskSubmission(agent: agent, action: "run", idempotencyKey: ""))
        #expect(Self.code(badKey) == .invalidArgument)
        let badAction = await Self.submit(tasks, TaskSubmission(agent: agent, action: ""))
        #expect(Self.code(badAction) == .invalidArgument)
        #expect(try js.streamInfo(subjects.tasksStream).state.messages == 2)
    }
}
