import MeshCore
import Testing

/// The task run queue's policy (priority, aging, per-agent order) and the retry backoff,
/// as pure functions of their inputs.
struct TaskSchedulingTests {
    let t0 = ContinuousClock.now

    func drain(_ queue: inout TaskQueue<String>, at now: ContinuousClock.Instant, busy: Set<String> = []) -> [String] {
        var out: [String] = []
        while let next = queue.pop(now: now, isBusy: { busy.contains($0) }) { out.append(next) }
        return out
    }

    @Test func highBeforeNormalBeforeLowAndFIFOWithinAClass() {
        var queue = TaskQueue<String>(aging: .seconds(10))
        queue.push("low-1", agent: "a", priority: .low, at: t0)
        queue.push("normal-1", agent: "b", priority: .normal, at: t0)
        queue.push("high-1", agent: "c", priority: .high, at: t0)
        queue.push("low-2", agent: "d", priority: .low, at: t0)
        queue.push("high-2", agent: "e", priority: .high, at: t0)
        #expect(drain(&queue, at: t0) == ["high-1", "high-2", "normal-1", "low-1", "low-2"])
        #expect(queue.count == 0)
    }

    @Test func effectiveClassDropsOnePerAgingStepAndStopsAtHigh() {
        let aging = Duration.seconds(2)
        #expect(TaskQueue<Int>.effectiveClass(.low, waited: .zero, aging: aging) == 2)
        #expect(TaskQueue<Int>.effectiveClass(.low, waited: .milliseconds(1_999), aging: aging) == 2)
        #expect(TaskQueue<Int>.effectiveClass(.low, waited: .seconds(2), aging: aging) == 1)
        #expect(TaskQueue<Int>.effectiveClass(.low, waited: .seconds(4), aging: aging) == 0)
        #expect(TaskQueue<Int>.effectiveClass(.low, waited: .seconds(400), aging: aging) == 0)
        #expect(TaskQueue<Int>.effectiveClass(.high, waited: .seconds(400), aging: aging) == 0)
        #expect(TaskQueue<Int>.effectiveClass(.normal, waited: .seconds(3), aging: aging) == 0)
    }

    @Test func anAgedLowTaskRunsBeforeNewerHighTasksSoHighNeverStarvesLow() {
        var queue = TaskQueue<String>(aging: .seconds(1))
        queue.push("old-low", agent: "a", priority: .low, at: t0)
        // A steady stream of high tasks keeps arriving; the low one is picked once it has
        // waited two aging steps, ahead of every high task that arrived after it.
        var order: [String] = []
        for step in 0..<6 {
            let now = t0 + .milliseconds(500 * step)
            queue.push("high-\(step)", agent: "h\(step)", priority: .high, at: now)
            if let next = queue.pop(now: now, isBusy: { _ in false }) { order.append(next) }
        }
        #expect(order.prefix(4) == ["high-0", "high-1", "high-2", "high-3"])
        #expect(order[4] == "old-low", "\(order)")
    }

    @Test func busyAgentsAreSkippedAndKeepTheirOrder() {
        var queue = TaskQueue<String>(aging: .seconds(10))
        queue.push("a-1", agent: "a", priority: .high, at: t0)
        queue.push("a-2", agent: "a", priority: .high, at: t0)
        queue.push("b-1", agent: "b", priority: .low, at: t0)
        // Agent a is running something: b's low task goes first; a's tasks wait in order.
        #expect(queue.pop(now: t0, isBusy: { $0 == "a" }) == "b-1")
        #expect(queue.pop(now: t0, isBusy: { $0 == "a" }) == nil)
        #expect(drain(&queue, at: t0) == ["a-1", "a-2"])
    }

    @Test func removeAllTakesMatchingTasksOnly() {
        var queue = TaskQueue<String>(aging: .seconds(1))
        for index in 0..<5 { queue.push("t-\(index)", agent: "a\(index)", priority: index % 2 == 0 ? .high : .low, at: t0) }
        let removed = queue.removeAll { $0 == "t-1" || $0 == "t-2" }
        #expect(Set(removed) == ["t-1", "t-2"])
        #expect(drain(&queue, at: t0) == ["t-0", "t-4", "t-3"])
    }

    @Test func backoffDoublesUpToTheMaximumWithEqualJitter() {
        let policy = TaskRetryPolicy(base: .milliseconds(500), maximum: .seconds(5))
        #expect(policy.delay(afterAttempt: 1, jitter: 1) == .milliseconds(500))
        #expect(policy.delay(afterAttempt: 2, jitter: 1) == .seconds(1))
        #expect(policy.delay(afterAttempt: 4, jitter: 1) == .seconds(4))
        #expect(policy.delay(afterAttempt: 5, jitter: 1) == .seconds(5))
        #expect(policy.delay(afterAttempt: 60, jitter: 1) == .seconds(5))
        #expect(policy.delay(afterAttempt: 3, jitter: 0) == .seconds(1))
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...8 {
            let nominal = min(Duration.seconds(5), .milliseconds(500) * (1 << (attempt - 1)))
            let delay = policy.delay(afterAttempt: attempt, using: &generator)
            #expect(delay >= nominal / 2 && delay <= nominal)
        }
    }

    @Test func idempotencyEntriesAreExactLegalKeys() throws {
        let agent = try AgentID("work-1")
        #expect(TaskRules.idempotencyEntry(agent: agent, key: "order-42") == "work-1.6f726465722d3432")
        #expect(TaskRules.idempotencyEntry(agent: agent, key: "a.b") != TaskRules.idempotencyEntry(agent: agent, key: "a-b"))
        #expect(throws: MeshError.self) { try TaskRules.validateIdempotencyKey("") }
        #expect(throws: MeshError.self) { try TaskRules.validateIdempotencyKey(String(repeating: "k", count: 129)) }
        #expect(throws: MeshError.self) { try TaskRules.validateAction("bad\naction") }
    }
}
