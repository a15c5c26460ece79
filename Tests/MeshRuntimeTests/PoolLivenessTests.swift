import Dispatch
import Foundation
import Logging
import MeshRuntime
import MeshTesting
import Testing

@Suite(.serialized)
struct PoolLivenessTests {
    /// What a thread outside the task pool saw.
    final class Observation: @unchecked Sendable {
        // @unchecked: written once by the observer thread before `done` is signalled.
        var live = true
        let done = DispatchSemaphore(value: 0)
    }

    /// Blocks the calling thread (what a wedged task does to its pool thread).
    static func block(seconds: Double) { Thread.sleep(forTimeInterval: seconds) }

    /// Every pool thread blocked (a wedged process): not live while it lasts, live again
    /// after.
    @Test func aStalledPoolIsNotLiveUntilItRunsTasksAgain() async throws {
        let liveness = PoolLiveness(interval: .milliseconds(20), stallAfter: .milliseconds(300), logger: Logger(label: "test"))
        let sampling = Task { await liveness.run() }
        defer { sampling.cancel() }
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) { liveness.isLive })

        // An observer on a thread of its own (the pool will be busy), then twice as many
        // blocking tasks as the pool has threads: nothing else runs for 1 to 2 s.
        let observation = Observation()
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.7)
            observation.live = liveness.isLive
            observation.done.signal()
        }
        let blockers = (0..<(2 * ProcessInfo.processInfo.activeProcessorCount)).map { _ in
            Task.detached { Self.block(seconds: 1.0) }
        }
        for blocker in blockers { await blocker.value }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                observation.done.wait()
                continuation.resume()
            }
        }
        #expect(!observation.live, "live while every pool thread was blocked")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(5)) { liveness.isLive }, "not live again after the stall")
    }
}
