/// Scheduling class of a task (the wire's `TaskPriority` without its unknown values).
public enum TaskPriorityClass: Int, Sendable, Hashable, CaseIterable, Comparable {
    case high = 0
    case normal = 1
    case low = 2

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// The per-shard run queue of a worker's task consumer: priority with aging, per-agent order,
/// at most one task per agent handed out at a time. Pure (no I/O, no clock of its own), so
/// the policy is unit-tested as a function of its inputs.
///
/// Policy:
/// - A task's **effective class** is its class (high 0, normal 1, low 2) minus one for every
///   full ``aging`` it has waited, never below 0. The next task is the one with the lowest
///   effective class; ties go to the one enqueued first. So high runs before normal before
///   low, yet a low task that waited `2 × aging` competes with high tasks by age: **high never
///   starves low forever** — a low task waits at most about `2 × aging` plus the tasks
///   queued before it.
/// - Per agent: tasks of one class leave in the order they were enqueued (stream order), and
///   an agent with a task running (`isBusy`) gets no other until it finishes — its mailbox
///   sees tasks one at a time, in this queue's order.
/// - Bounded by its owner: the consumer never fetches more than its MaxAckPending.
///
/// ```swift
/// var queue = TaskQueue<String>(aging: .seconds(1))
/// queue.push("t-1", agent: "a", priority: .low, at: now)
/// queue.push("t-2", agent: "b", priority: .high, at: now)
/// queue.pop(now: now) { _ in false }   // "t-2"
/// ```
public struct TaskQueue<Item> {
    struct Entry {
        var item: Item
        var agent: String
        var priority: TaskPriorityClass
        var enqueuedAt: ContinuousClock.Instant
        var order: UInt64
    }

    /// Waiting this long promotes a task by one class.
    public let aging: Duration
    private var lanes: [[Entry]] = [[], [], []]
    private var nextOrder: UInt64 = 0

    /// - Parameter aging: how long a task waits before it is promoted one class (> 0).
    public init(aging: Duration) {
        precondition(aging > .zero, "aging must be positive")
        self.aging = aging
    }

    /// Tasks queued.
    public var count: Int { lanes.reduce(0) { $0 + $1.count } }

    /// Queues a task of `agent`.
    public mutating func push(_ item: Item, agent: String, priority: TaskPriorityClass, at now: ContinuousClock.Instant) {
        lanes[priority.rawValue].append(Entry(item: item, agent: agent, priority: priority, enqueuedAt: now, order: nextOrder))
        nextOrder += 1
    }

    /// The effective class of a task of class `priority` that waited `waited` (pure).
    public static func effectiveClass(_ priority: TaskPriorityClass, waited: Duration, aging: Duration) -> Int {
        guard waited > .zero else { return priority.rawValue }
        let steps = Int(min(Double(priority.rawValue), (waited / aging).rounded(.down)))
        return priority.rawValue - steps
    }

    /// Takes the next task whose agent is not busy, or nil when there is none.
    public mutating func pop(now: ContinuousClock.Instant, isBusy: (String) -> Bool) -> Item? {
        var best: (lane: Int, index: Int, rank: Int, order: UInt64)?
        for lane in 0..<lanes.count {
            // Per lane, the first task of an idle agent is the oldest candidate of that lane.
            guard let index = lanes[lane].firstIndex(where: { !isBusy($0.agent) }) else { continue }
            let entry = lanes[lane][index]
            let rank = Self.effectiveClass(entry.priority, waited: now - entry.enqueuedAt, aging: aging)
            if let current = best, (current.rank, current.order) <= (rank, entry.order) { continue }
            best = (lane, index, rank, entry.order)
        }
        guard let best else { return nil }
        return lanes[best.lane].remove(at: best.index).item
    }

    /// Removes and returns every queued task matching `predicate` (in no particular order).
    public mutating func removeAll(where predicate: (Item) -> Bool) -> [Item] {
        var removed: [Item] = []
        for lane in 0..<lanes.count {
            lanes[lane].removeAll { entry in
                guard predicate(entry.item) else { return false }
                removed.append(entry.item)
                return true
            }
        }
        return removed
    }

    /// Every queued task (for in-progress acknowledgements).
    public func forEach(_ body: (Item) -> Void) {
        for lane in lanes { for entry in lane { body(entry.item) } }
    }
}

/// Exponential backoff with jitter between attempts of a failing task.
///
/// The delay after attempt `n` (1-based) is `min(maximum, base × 2^(n-1))` scaled by a
/// factor drawn uniformly from [0.5, 1.0] ("equal jitter"): retries of many tasks that failed
/// together spread out instead of coming back in lockstep, and no delay is shorter than half
/// its nominal value.
///
/// ```swift
/// let policy = TaskRetryPolicy(base: .milliseconds(500), maximum: .seconds(30))
/// policy.delay(afterAttempt: 3, jitter: 1.0)   // 2 s
/// ```
public struct TaskRetryPolicy: Sendable, Hashable {
    /// Nominal delay after the first attempt.
    public var base: Duration
    /// Longest delay.
    public var maximum: Duration

    public init(base: Duration = .milliseconds(500), maximum: Duration = .seconds(30)) {
        self.base = base
        self.maximum = max(base, maximum)
    }

    /// The delay after attempt `attempt` (1-based) with `jitter` in [0, 1] (pure).
    public func delay(afterAttempt attempt: Int, jitter: Double) -> Duration {
        let exponent = min(max(attempt, 1) - 1, 40)
        let nominal = min(maximum, base * Double(1 << UInt64(exponent)))
        return nominal * (0.5 + 0.5 * min(1, max(0, jitter)))
    }

    /// The delay after attempt `attempt` with jitter from `generator`.
    public func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        delay(afterAttempt: attempt, jitter: Double.random(in: 0...1, using: &generator))
    }
}

/// Limits and derived names of durable tasks, shared by the client and the worker.
public enum TaskRules {
    /// Largest task payload (bytes); larger submissions fail with `too_large`.
    public static let maxPayloadBytes = 256 * 1024
    /// Largest result kept in the history; a larger one is recorded without its bytes.
    public static let maxResultBytes = 256 * 1024
    /// Attempts when a submission does not say.
    public static let defaultMaxAttempts = 5
    /// Most attempts a submission may ask for.
    public static let maxAttemptsLimit = 100
    /// Longest idempotency key (bytes).
    public static let maxIdempotencyKeyBytes = 128
    /// Longest action name (bytes).
    public static let maxActionBytes = 128

    /// Checks an idempotency key: 1…128 bytes of UTF-8.
    /// - Throws: ``MeshError`` `invalid_argument`.
    public static func validateIdempotencyKey(_ key: String) throws(MeshError) {
        guard !key.isEmpty, key.utf8.count <= maxIdempotencyKeyBytes else {
            throw MeshError(.invalidArgument, "an idempotency key has 1...\(maxIdempotencyKeyBytes) bytes, got \(key.utf8.count)")
        }
    }

    /// Checks an action name: 1…128 bytes, no control characters.
    /// - Throws: ``MeshError`` `invalid_argument`.
    public static func validateAction(_ action: String) throws(MeshError) {
        guard !action.isEmpty, action.utf8.count <= maxActionBytes, !action.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw MeshError(.invalidArgument, "an action name has 1...\(maxActionBytes) bytes and no control characters")
        }
    }

    /// The KV key of an idempotency key: `<agent>.<hex of the key's UTF-8>` — exact (no
    /// hash collisions) and always a legal KV key.
    public static func idempotencyEntry(agent: AgentID, key: String) -> String {
        let hex = "0123456789abcdef".utf8.map { $0 }
        var out = [UInt8]()
        out.reserveCapacity(key.utf8.count * 2)
        for byte in key.utf8 {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return agent.rawValue + "." + String(decoding: out, as: UTF8.self)
    }
}
