public import MeshCore
import Synchronization

/// One agent inside a worker: its behaviour, a bounded mailbox, and the state of the
/// action being run.
///
/// - **Serial, in order**: actions run one at a time in the order `send` accepted them;
///   different cells run in parallel on the cooperative thread pool.
/// - **Bounded**: at most `mailboxCapacity` actions wait besides the running one; one more
///   is refused at once with `busy` (with a retry hint from the recent action time) —
///   never dropped silently, never queued without bound.
/// - **Deadlines**: each action's deadline is the earlier of the caller's and
///   `now + actionTimeout`. An action whose deadline passed while it waited is answered
///   `timeout` without running. A handler still running at its deadline is answered
///   `timeout`, its task is **cancelled** (cooperatively: a handler that ignores
///   cancellation keeps its thread until it returns, and its result is discarded), and the
///   agent fails.
/// - **Failure**: a handler that throws something other than ``MeshError``, or overruns
///   its deadline, fails the agent: the caller gets `internal`/`timeout`, queued actions are
///   answered `unavailable` (retry later), the runtime's `onFailure` hook is told, and the
///   cell refuses actions (`unavailable`) until ``restart(restoringFrom:)`` gives it a new
///   behaviour instance.
/// - **Checkpoints**: ``stateVersion`` counts actions that may have changed the state;
///   ``checkpoint()`` returns the state between two actions, ``markCheckpointed(version:)``
///   records what was saved, and the runtime's `onStateChange` hook fires once per
///   clean → changed transition so the worker can batch its writes.
/// - **Idle is cheap**: an idle cell is one small object (no task, no thread, no buffer);
///   a task exists only while its mailbox has work.
///
/// ```swift
/// let cell = try runtime.makeCell(id: AgentID("counter-1"), kind: "counter")
/// let reply = try await cell.call("add", payload: Array(#"{"by":2}"#.utf8))   // {"value":2}
/// let saved = try await cell.checkpoint()                                     // version + bytes
/// cell.markCheckpointed(version: saved.version)
/// await cell.stop(.drain)
/// ```
public final class AgentCell: Sendable {
    /// The reply to one action: the handler's bytes, or the error to send back.
    public typealias Reply = @Sendable (Result<[UInt8], MeshError>) -> Void

    /// What ``stop(_:)`` does with actions still queued.
    public enum StopMode: Sendable {
        /// Run the queued actions, then stop.
        case drain
        /// Answer the queued actions `unavailable` at once (the running one finishes).
        case reject
    }

    /// The cell's lifecycle phase.
    public enum Phase: Sendable, Hashable {
        /// Accepting and running actions.
        case running
        /// Failed; refusing actions until restarted.
        case failed
        /// `stop` was called; queued actions are finishing.
        case stopping
        /// Stopped for good.
        case stopped
    }

    /// The agent's id.
    public let id: AgentID
    /// The agent's kind name.
    public let kind: String
    /// Queued actions allowed besides the running one.
    public let mailboxCapacity: Int
    /// The longest an action may run.
    public let actionTimeout: Duration
    /// The life of the agent this cell runs (`AgentSpec.incarnation`; 0: unknown): its
    /// state checkpoints carry it.
    public let incarnation: UInt64
    let config: [UInt8]
    let labels: [String: String]
    let runtime: AgentRuntime
    /// The kind's ``AgentBehavior/answersInline``.
    let answersInline: Bool
    private let state: Mutex<State>

    init(
        id: AgentID, kind: String, config: [UInt8], labels: [String: String], capacity: Int, actionTimeout: Duration,
        incarnation: UInt64, behavior: any AgentBehavior, runtime: AgentRuntime
    ) {
        self.id = id
        self.incarnation = incarnation
        self.kind = kind
        self.config = config
        self.labels = labels
        self.mailboxCapacity = capacity
        self.actionTimeout = actionTimeout
        self.runtime = runtime
        self.answersInline = type(of: behavior).answersInline
        self.state = Mutex(State(behavior: behavior))
    }

    // MARK: - Sending

    /// Queues an action; `reply` is called exactly once with its outcome (from another
    /// thread, possibly before `send` returns). Never blocks and never creates a task when
    /// one is already draining the mailbox — callable straight from a NATS callback. An
    /// idle agent of a kind that ``AgentBehavior/answersInline`` runs the action right here,
    /// on the calling thread, and `reply` is called before `send` returns.
    /// - Parameter deadline: the caller's deadline (nil: only the agent's action timeout).
    /// - Throws: ``MeshError`` without queueing (and without calling `reply`): `busy` when
    ///   the mailbox is full (with `retryAfter`), `timeout` when the deadline has passed,
    ///   `unavailable` when the agent failed or is stopping (with `retryAfter`).
    public func send(_ action: String, payload: [UInt8], deadline: ContinuousClock.Instant? = nil, reply: @escaping Reply)
        throws(MeshError)
    {
        let now = ContinuousClock.now
        let limit = now + actionTimeout
        let effective = deadline.map { min($0, limit) } ?? limit
        guard effective > now else {
            throw MeshError(.timeout, "the deadline passed before agent \(id) could accept action '\(Check.shown(action))'")
        }
        let envelope = Envelope(action: action, payload: payload, deadline: effective, reply: reply)
        let inline = answersInline
        let runNow = try state.withLock { (state: inout State) throws(MeshError) -> (any AgentBehavior, UInt32)? in
            guard state.phase == .running else { throw refusal(state.phase) }
            if inline, state.drainTask == nil, !state.inlineBusy, state.queue.count == 0, let behavior = state.behavior.take() {
                state.inlineBusy = true
                state.running = Running(action: action, deadline: effective, reply: reply, started: now)
                return (behavior, state.incarnation)
            }
            guard state.queue.count < mailboxCapacity else {
                let hint = state.retryHint(queued: state.queue.count)
                throw MeshError(
                    .busy, "mailbox of agent \(id) is full (\(mailboxCapacity) queued); retry later", retryAfter: hint)
            }
            state.queue.append(envelope)
            if state.drainTask == nil, !state.inlineBusy {
                let incarnation = state.incarnation
                state.drainTask = Task { await self.drain(incarnation: incarnation) }
            }
            return nil
        }
        if let (behavior, incarnation) = runNow { runInline(envelope, behavior: behavior, incarnation: incarnation) }
    }

    /// Sends an action and waits for its reply. Cancelling the calling task does not
    /// withdraw the action.
    /// - Throws: ``MeshError`` as ``send(_:payload:deadline:reply:)`` does, or the action's error.
    public func call(_ action: String, payload: [UInt8] = [], deadline: ContinuousClock.Instant? = nil) async throws(MeshError)
        -> [UInt8]
    {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[UInt8], MeshError>, Never>) in
            do throws(MeshError) {
                try send(action, payload: payload, deadline: deadline) { continuation.resume(returning: $0) }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }

    private func refusal(_ phase: Phase) -> MeshError {
        switch phase {
        case .running: MeshError(.internalError, "agent \(id) refused an action while running")
        case .failed: MeshError(.unavailable, "agent \(id) has failed and is waiting to be restarted", retryAfter: .milliseconds(100))
        case .stopping: MeshError(.unavailable, "agent \(id) is stopping", retryAfter: .milliseconds(100))
        case .stopped: MeshError(.unavailable, "agent \(id) is stopped", retryAfter: .milliseconds(100))
        }
    }

    // MARK: - Running

    private enum Step {
        case run(Envelope, any AgentBehavior)
        case expired(Envelope)
        case finished(stopWaiters: [CheckedContinuation<Void, Never>])
        case stale
    }

    private enum Completion {
        case answered(dirty: Bool, waiters: [SnapshotWaiter], behavior: (any AgentBehavior)?, version: UInt64)
        case failed(pending: [Envelope], waiters: [SnapshotWaiter], stopWaiters: [CheckedContinuation<Void, Never>])
        case stale
    }

    /// The mailbox loop: one task per busy period, started by `send`, ended when the
    /// mailbox is empty or the incarnation it served is gone (failure, restart).
    private func drain(incarnation: UInt32) async {
        while true {
            let now = ContinuousClock.now
            let step = state.withLock { (state: inout State) -> Step in
                guard state.incarnation == incarnation else { return .stale }
                guard let envelope = state.queue.popFirst() else {
                    state.drainTask = nil
                    return .finished(stopWaiters: state.becomeIdle())
                }
                if envelope.deadline <= now { return .expired(envelope) }
                guard let behavior = state.behavior.take() else { return .stale }
                state.running = Running(action: envelope.action, deadline: envelope.deadline, reply: envelope.reply, started: now)
                return .run(envelope, behavior)
            }
            switch step {
            case .stale:
                return
            case .finished(let stopWaiters):
                for waiter in stopWaiters { waiter.resume() }
                return
            case .expired(let envelope):
                envelope.reply(
                    .failure(
                        MeshError(.timeout, "the deadline of action '\(Check.shown(envelope.action))' passed while it waited in the mailbox of agent \(id)")
                    ))
            case .run(let envelope, var behavior):
                runtime.watchdog.watch(self)
                let outcome: Result<[UInt8], any Error>
                do {
                    outcome = .success(try await behavior.handle(envelope.action, payload: envelope.payload, context: context(for: envelope)))
                } catch {
                    outcome = .failure(error)
                }
                guard complete(envelope, behavior: behavior, outcome: outcome, incarnation: incarnation) else { return }
            }
        }
    }

    private func context(for envelope: Envelope) -> AgentContext {
        AgentContext(agentID: id, action: envelope.action, deadline: envelope.deadline, dispatcher: runtime.dispatcher, logger: runtime.logger)
    }

    /// Runs an idle agent's action on the calling thread (``send(_:payload:deadline:reply:)``
    /// took the behaviour and marked the cell busy); then hands anything queued meanwhile to
    /// a drain task, or finishes a stop that waited for this action.
    private func runInline(_ envelope: Envelope, behavior: any AgentBehavior, incarnation: UInt32) {
        var behavior = behavior
        runtime.watchdog.watch(self)
        let outcome: Result<[UInt8], any Error>
        do {
            outcome = .success(try behavior.handleInline(envelope.action, payload: envelope.payload, context: context(for: envelope)))
        } catch {
            outcome = .failure(error)
        }
        guard complete(envelope, behavior: behavior, outcome: outcome, incarnation: incarnation) else { return }
        let stopWaiters = state.withLock { (state: inout State) -> [CheckedContinuation<Void, Never>] in
            guard state.incarnation == incarnation else { return [] }
            state.inlineBusy = false
            if state.queue.count > 0 {
                state.drainTask = Task { await self.drain(incarnation: incarnation) }
                return []
            }
            return state.becomeIdle()
        }
        for waiter in stopWaiters { waiter.resume() }
    }

    /// Records a finished action and answers it: the state version, the checkpoints waiting
    /// for it, or the agent's failure.
    /// - Returns: false when the runner must stop (the agent failed, or the incarnation it
    ///   served is gone).
    private func complete(
        _ envelope: Envelope, behavior: any AgentBehavior, outcome: Result<[UInt8], any Error>, incarnation: UInt32
    ) -> Bool {
        let finishedAt = ContinuousClock.now
        let completion = state.withLock { (state: inout State) -> Completion in
            guard state.incarnation == incarnation, let running = state.running else { return .stale }
            state.running = nil
            state.recordDuration(finishedAt - running.started)
            if case .failure(let error) = outcome, !(error is MeshError) {
                return failLocked(&state)
            }
            var dirty = false
            if behavior.mayChangeState(envelope.action) {
                dirty = state.version == state.checkpointedVersion
                state.version &+= 1
            }
            let waiters = state.snapshotWaiters
            state.snapshotWaiters = []
            state.behavior = behavior
            return .answered(dirty: dirty, waiters: waiters, behavior: waiters.isEmpty ? nil : behavior, version: state.version)
        }
        switch completion {
        case .stale:
            return false
        case .answered(let dirty, let waiters, let snapshotBehavior, let version):
            switch outcome {
            case .success(let bytes): envelope.reply(.success(bytes))
            case .failure(let error): envelope.reply(.failure(error as? MeshError ?? MeshError(.internalError, "unexpected error")))
            }
            if dirty { runtime.onStateChange(self) }
            if let snapshotBehavior { resolve(waiters, with: Self.checkpoint(of: snapshotBehavior, version: version, id: id)) }
            return true
        case .failed(let pending, let waiters, let stopWaiters):
            let error: (any Error)? = if case .failure(let error) = outcome { error } else { nil }
            envelope.reply(
                .failure(
                    MeshError(
                        .internalError,
                        "agent \(id) failed while handling action '\(Check.shown(envelope.action))'; it is restarted according to its restart policy"
                    )))
            finishFailure(
                reason: .threw, action: envelope.action, error: error, pending: pending, waiters: waiters, stopWaiters: stopWaiters)
            return false
        }
    }

    /// Moves to failed (or stopped, when stopping); returns what must be answered.
    private func failLocked(_ state: inout State) -> Completion {
        state.incarnation &+= 1
        state.behavior = nil
        state.drainTask = nil
        state.inlineBusy = false
        let pending = state.queue.takeAll()
        state.queue = MailQueue()
        let waiters = state.snapshotWaiters
        state.snapshotWaiters = []
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        if state.phase == .stopping || state.phase == .stopped {
            state.phase = .stopped
            swap(&stopWaiters, &state.stopWaiters)
        } else {
            state.phase = .failed
        }
        return .failed(pending: pending, waiters: waiters, stopWaiters: stopWaiters)
    }

    private func finishFailure(
        reason: AgentFailure.Reason, action: String, error: (any Error)?, pending: [Envelope], waiters: [SnapshotWaiter],
        stopWaiters: [CheckedContinuation<Void, Never>]
    ) {
        let refusal = MeshError(.unavailable, "agent \(id) failed before running this action; retry later", retryAfter: .milliseconds(100))
        for envelope in pending { envelope.reply(.failure(refusal)) }
        resolve(waiters, with: .failure(MeshError(.unavailable, "agent \(id) failed; its state is the last checkpoint")))
        for waiter in stopWaiters { waiter.resume() }
        runtime.onFailure(AgentFailure(cell: self, reason: reason, action: Check.shown(action), error: error))
    }

    /// Called by the watchdog: answers `timeout` and fails the agent when the running
    /// action's deadline has passed.
    /// - Returns: whether an action is (still) running after the check.
    func expireIfOverdue(now: ContinuousClock.Instant) -> Bool {
        let expired = state.withLock { (state: inout State) -> (Running, Task<Void, Never>?, Completion)? in
            guard let running = state.running else { return nil }
            guard running.deadline <= now else { return (running, nil, .stale) }
            state.running = nil
            let task = state.drainTask
            return (running, task, failLocked(&state))
        }
        guard let (running, task, completion) = expired else { return false }
        guard case .failed(let pending, let waiters, let stopWaiters) = completion else { return true }
        task?.cancel()
        let allowed = running.deadline - running.started
        running.reply(
            .failure(
                MeshError(
                    .timeout,
                    "agent \(id) did not finish action '\(Check.shown(running.action))' within its deadline (\(allowed.totalMilliseconds) ms); the agent is restarted according to its restart policy"
                )))
        finishFailure(reason: .timedOut, action: running.action, error: nil, pending: pending, waiters: waiters, stopWaiters: stopWaiters)
        return false
    }

    var isRunningAction: Bool { state.withLock { $0.running != nil } }

    // MARK: - Lifecycle

    /// The cell's phase.
    public var phase: Phase { state.withLock { $0.phase } }

    /// Actions waiting in the mailbox (not counting the running one).
    public var queuedCount: Int { state.withLock { $0.queue.count } }

    /// Gives a failed agent a new behaviour instance, restored from `snapshot` (the last
    /// checkpoint; nil starts from the kind's initial state), and accepts actions again.
    /// A handler of the failed instance that ignored cancellation may still be running;
    /// its result is discarded.
    /// - Throws: ``MeshError``: `conflict` unless the cell has failed; the kind's errors
    ///   (`internal` for an unreadable snapshot) — the cell then stays failed.
    public func restart(restoringFrom snapshot: [UInt8]?) throws(MeshError) {
        guard phase == .failed else {
            throw MeshError(.conflict, "agent \(id) is \(phase), not failed; only a failed agent is restarted")
        }
        let behavior = try runtime.makeBehavior(for: self, restoringFrom: snapshot)
        try state.withLock { (state: inout State) throws(MeshError) in
            guard state.phase == .failed else {
                throw MeshError(.conflict, "agent \(id) is \(state.phase), not failed; only a failed agent is restarted")
            }
            state.behavior = behavior
            state.phase = .running
            state.version &+= 1
            state.checkpointedVersion = state.version
        }
    }

    /// Stops the agent: refuses new actions (`unavailable`), then drains or rejects the
    /// queued ones, and returns when no action runs any more (a running handler finishes
    /// or hits its deadline). The behaviour stays available to ``checkpoint()``.
    public func stop(_ mode: StopMode = .drain) async {
        let (rejected, wait) = state.withLock { (state: inout State) -> ([Envelope], Bool) in
            switch state.phase {
            case .stopped: return ([], false)
            case .failed:
                state.phase = .stopped
                return ([], false)
            case .running, .stopping:
                state.phase = .stopping
                let rejected = mode == .reject ? state.queue.takeAll() : []
                if state.drainTask == nil, !state.inlineBusy {
                    state.phase = .stopped
                    return (rejected, false)
                }
                return (rejected, true)
            }
        }
        let refusal = MeshError(.unavailable, "agent \(id) stopped before running this action", retryAfter: .milliseconds(100))
        for envelope in rejected { envelope.reply(.failure(refusal)) }
        guard wait else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { (state: inout State) -> Bool in
                if state.phase == .stopped { return true }
                state.stopWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    // MARK: - Checkpoints

    /// Counts actions that may have changed the state (``AgentBehavior/mayChangeState(_:)``).
    public var stateVersion: UInt64 { state.withLock { $0.version } }

    /// Whether the state changed since the last ``markCheckpointed(version:)``.
    public var needsCheckpoint: Bool { state.withLock { $0.version != $0.checkpointedVersion } }

    /// The agent's state between two actions: at once when idle, else right after the
    /// running action (bounded by its deadline).
    /// - Returns: the state version and the behaviour's snapshot (nil: stateless).
    /// - Throws: ``MeshError`` `unavailable` when the agent failed (its state is the last
    ///   checkpoint), `internal` when the behaviour cannot snapshot itself.
    public func checkpoint() async throws(MeshError) -> AgentCheckpoint {
        enum Now {
            case ready(any AgentBehavior, UInt64)
            case failed
            case later
        }
        let now = state.withLock { (state: inout State) -> Now in
            if let behavior = state.behavior { return .ready(behavior, state.version) }
            return state.running == nil ? .failed : .later
        }
        switch now {
        case .ready(let behavior, let version):
            return try Self.checkpoint(of: behavior, version: version, id: id).get()
        case .failed:
            throw MeshError(.unavailable, "agent \(id) failed; its state is the last checkpoint")
        case .later:
            let result = await withCheckedContinuation { (continuation: SnapshotWaiter) in
                let immediate = state.withLock { (state: inout State) -> Now in
                    if let behavior = state.behavior { return .ready(behavior, state.version) }
                    if state.running == nil { return .failed }
                    state.snapshotWaiters.append(continuation)
                    return .later
                }
                switch immediate {
                case .ready(let behavior, let version): continuation.resume(returning: Self.checkpoint(of: behavior, version: version, id: id))
                case .failed: continuation.resume(returning: .failure(MeshError(.unavailable, "agent \(id) failed; its state is the last checkpoint")))
                case .later: break
                }
            }
            return try result.get()
        }
    }

    /// Records that the state up to `version` is saved. If it changed again since, the
    /// `onStateChange` hook fires again so the next batch picks it up.
    public func markCheckpointed(version: UInt64) {
        let stillDirty = state.withLock { (state: inout State) -> Bool in
            guard version > state.checkpointedVersion || state.checkpointedVersion > state.version else { return false }
            state.checkpointedVersion = min(version, state.version)
            return state.checkpointedVersion != state.version
        }
        if stillDirty { runtime.onStateChange(self) }
    }

    private static func checkpoint(of behavior: any AgentBehavior, version: UInt64, id: AgentID) -> Result<AgentCheckpoint, MeshError> {
        do {
            return .success(AgentCheckpoint(version: version, state: try behavior.snapshot()))
        } catch let error as MeshError {
            return .failure(MeshError(.internalError, "cannot snapshot agent \(id): \(error.message)"))
        } catch {
            return .failure(MeshError(.internalError, "cannot snapshot agent \(id)"))
        }
    }

    private func resolve(_ waiters: [SnapshotWaiter], with result: Result<AgentCheckpoint, MeshError>) {
        for waiter in waiters { waiter.resume(returning: result) }
    }
}

/// A saved state of an agent.
public struct AgentCheckpoint: Sendable, Hashable {
    /// The ``AgentCell/stateVersion`` the snapshot reflects.
    public var version: UInt64
    /// The behaviour's snapshot; nil for stateless kinds.
    public var state: [UInt8]?

    public init(version: UInt64, state: [UInt8]?) {
        self.version = version
        self.state = state
    }
}

// MARK: - Internals

typealias SnapshotWaiter = CheckedContinuation<Result<AgentCheckpoint, MeshError>, Never>

/// An accepted action waiting in the mailbox.
struct Envelope: Sendable {
    var action: String
    var payload: [UInt8]
    var deadline: ContinuousClock.Instant
    var reply: AgentCell.Reply
}

/// The action being run.
struct Running: Sendable {
    var action: String
    var deadline: ContinuousClock.Instant
    var reply: AgentCell.Reply
    var started: ContinuousClock.Instant
}

/// Everything mutable of a cell, behind its lock. Empty arrays and nil optionals cost no
/// allocation, so an idle cell is only this struct inside the cell object.
struct State {
    var phase: AgentCell.Phase = .running
    /// Nil while an action runs (the drain task holds it) or after a failure.
    var behavior: (any AgentBehavior)?
    var queue = MailQueue()
    /// The task draining the mailbox; nil when idle.
    var drainTask: Task<Void, Never>?
    /// An action runs inline on a sender's thread; later sends queue behind it and that
    /// thread starts the drain task when it is done.
    var inlineBusy = false

    /// The mailbox ran empty with nothing running: frees the queue's storage and finishes a
    /// stop that waited for it.
    /// - Returns: the callers of `stop` to resume (outside the lock).
    mutating func becomeIdle() -> [CheckedContinuation<Void, Never>] {
        queue = MailQueue()
        guard phase == .stopping else { return [] }
        phase = .stopped
        defer { stopWaiters = [] }
        return stopWaiters
    }
    var running: Running?
    /// Bumped on failure, so that a stale drain task (whose handler overran) never
    /// touches the restarted agent.
    var incarnation: UInt32 = 0
    /// Smoothed action duration in microseconds (for the `busy` retry hint).
    var averageMicros: UInt32 = 0
    var version: UInt64 = 0
    var checkpointedVersion: UInt64 = 0
    var snapshotWaiters: [SnapshotWaiter] = []
    var stopWaiters: [CheckedContinuation<Void, Never>] = []

    init(behavior: any AgentBehavior) { self.behavior = behavior }

    mutating func recordDuration(_ duration: Duration) {
        let micros = UInt32(clamping: duration.totalNanoseconds / 1_000)
        averageMicros = averageMicros == 0 ? micros : UInt32((UInt64(averageMicros) * 7 + UInt64(micros)) / 8)
    }

    /// How long until the queue has room, estimated from recent action times: between
    /// 5 ms and 5 s.
    func retryHint(queued: Int) -> Duration {
        let micros = Int64(averageMicros) * Int64(max(1, queued / 2))
        return .microseconds(min(max(micros, 5_000), 5_000_000))
    }
}

/// A FIFO over an array with a moving head; the storage is released when a busy period
/// ends, so an idle mailbox holds no buffer.
struct MailQueue {
    private var items: [Envelope?] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func append(_ envelope: Envelope) { items.append(envelope) }

    mutating func popFirst() -> Envelope? {
        guard head < items.count else { return nil }
        let envelope = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 32 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return envelope
    }

    mutating func takeAll() -> [Envelope] {
        let all = items[head...].compactMap { $0 }
        items = []
        head = 0
        return all
    }
}
