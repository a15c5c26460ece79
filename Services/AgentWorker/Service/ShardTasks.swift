import AgentSDK
import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Metrics
import Nats
import Synchronization

/// Settings of the task consumers of a worker.
struct TaskSettings: Sendable {
    /// Redelivery after this long without an acknowledgement (a crashed worker's tasks come
    /// back after it); running and queued tasks send in-progress well before.
    var ackWait: Duration = .seconds(10)
    /// Tasks fetched and not yet acknowledged per shard (the consumer's MaxAckPending).
    var maxInFlight: Int = 256
    var retry = TaskRetryPolicy()
    /// Priority aging step (see `TaskQueue`).
    var aging: Duration = .seconds(2)
    /// A task still running this long after it started is recorded as `running`; one that
    /// ends sooner goes straight to its outcome (its start time is in that record). Like
    /// Celery's `task_track_started` off by default, this spares short tasks a stored event
    /// each — a third of the event traffic of a short task.
    var runningEventAfter: Duration = .milliseconds(100)
}

/// How the worker answers "where does this agent run?" for a task.
enum TaskTarget {
    case ready(AgentCell)
    /// Its shard was just taken; the agent is being started.
    case starting
    /// Not hosted here (no such agent, or it could not start).
    case unknown
}

/// What a shard's task consumer needs from its worker.
struct TaskHost: Sendable {
    var node: NodeID
    var subjects: Subjects
    var shardMap: ShardMap
    var jetStream: JetStream
    var logger: Logger
    var settings: TaskSettings
    var metrics: TaskMetrics
    var target: @Sendable (AgentID) -> TaskTarget
    var isCancelled: @Sendable (String) -> Bool
}

/// Counters and histograms of task execution, created once per worker.
final class TaskMetrics: Sendable {
    let succeeded = Counter(label: "mesh_tasks_total", dimensions: [("outcome", "succeeded")])
    let retried = Counter(label: "mesh_tasks_total", dimensions: [("outcome", "retrying")])
    let deadLettered = Counter(label: "mesh_tasks_total", dimensions: [("outcome", "dead_lettered")])
    let expired = Counter(label: "mesh_tasks_total", dimensions: [("outcome", "expired")])
    let cancelled = Counter(label: "mesh_tasks_total", dimensions: [("outcome", "cancelled")])
    let failed = Counter(label: "mesh_tasks_total", dimensions: [("outcome", "failed")])
    let duration = Timer(label: "mesh_task_duration")
    let queueWait = Timer(label: "mesh_task_queue_wait")
    let eventFailures = Counter(label: "mesh_task_events_failed_total")
}

/// The durable tasks of one owned shard: one pull consumer on the shard's durable
/// (`tasks-<shard>`, filter `<prefix>.task.<shard>.*`), a run queue with priorities
/// (``TaskQueue``), execution through each agent's mailbox one task per agent at a time.
///
/// Life of a delivery (attempt = JetStream's delivery count):
/// - undecodable, or its agent does not match its subject → `failed`, terminated;
/// - cancelled (KV `mesh_task_cancel`) → `cancelled`, terminated;
/// - past its deadline → `expired`, terminated (also when the deadline passes while it waits
///   or runs);
/// - otherwise queued, then run (a `running` event once it has run for
///   ``TaskSettings/runningEventAfter``): success → `succeeded` event stored, then ack;
///   failure → `retrying` and a nak with exponential backoff and jitter, or after the last
///   attempt → a `DeadLetter` on `MESH_TASKS_DLQ` and a `dead_lettered` event, both stored
///   before the task is terminated.
/// A terminal event is always stored before the acknowledgement: a crash in between only
/// causes a redelivery (at least once), never a task without a terminal state.
///
/// Queued and running tasks get in-progress acknowledgements, so a long task or a long queue
/// is not redelivered while this worker lives. On ``stop()`` (the shard moved away) fetching
/// stops at once and queued tasks are nak'ed for the new owner; running ones finish here.
final class ShardTasks: @unchecked Sendable {
    // @unchecked: mutable state lives in `state` (a Mutex); the rest is immutable.
    struct Pending: Sendable {
        var message: JetStreamMessage
        var envelope: TaskEnvelope
        var agent: AgentID
        var attempt: Int
        var receivedAt: ContinuousClock.Instant
        var startedAt: Date?
        /// When this attempt started running, on the monotonic clock.
        var runningSince: ContinuousClock.Instant?
        /// Whether its `running` event was published.
        var runningRecorded = false
    }

    struct State {
        var queue: TaskQueue<Pending>
        var held: [(pending: Pending, until: ContinuousClock.Instant)] = []
        var busy: Set<String> = []
        var running: [String: Pending] = [:]
        /// Running tasks cancelled meanwhile: their outcome is ignored.
        var cancelledRunning: Set<String> = []
        /// Fetched and not yet settled (acked, nak'ed or terminated).
        var inFlight = 0
        var stopped = false
        /// When in-progress acknowledgements were last sent.
        var lastProgress = ContinuousClock.now
    }

    /// After taking a shard, how long a task of an agent not (yet) hosted waits instead of
    /// failing an attempt.
    static let startGrace: Duration = .seconds(5)

    let shard: Int
    let epoch: UInt64
    let openedAt = ContinuousClock.now
    let consumer: PullConsumer
    let host: TaskHost
    private let state: Mutex<State>
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>
    private let pendingGauge: Gauge
    private let ackPendingGauge: Gauge
    private let maxAckPendingGauge: Gauge

    /// Creates (or updates) the shard's durable consumer and binds to it. Blocking: call
    /// through `BlockingIO`.
    static func open(shard: Int, epoch: UInt64, host: TaskHost) throws(NatsError) -> ShardTasks {
        let consumer = try host.jetStream.pullSubscribe(try ensureConsumer(shard: shard, host: host))
        return ShardTasks(shard: shard, epoch: epoch, consumer: consumer, host: host)
    }

    /// The shard's consumer: durable, its state in the server's memory. A state file
    /// rewritten ten times a second by each of 64 busy consumers cost nats-server about 15 %
    /// of its CPU, and the work-queue stream already holds every task not yet acknowledged:
    /// a consumer lost with a restarted server is created again by ``run()`` and
    /// redelivers them all. One left on file by an older worker: nats-server 2.12 accepts the
    /// update (and keeps the file until the consumer is created again); newer servers refuse
    /// it, and the consumer is replaced (its unacknowledged tasks stay in the stream and come
    /// from the new one). Blocking.
    static func ensureConsumer(shard: Int, host: TaskHost) throws(NatsError) -> ConsumerInfo {
        var config = ConsumerConfig(durableName: host.subjects.taskConsumer(shard: shard), filterSubject: host.subjects.taskWildcard(shard: shard))
        config.ackWait = host.settings.ackWait
        config.maxAckPending = host.settings.maxInFlight
        config.maxDeliver = -1
        config.description = "Tasks of shard \(shard), pulled by its owner"
        config.memoryStorage = true
        let stream = host.subjects.tasksStream
        do {
            return try host.jetStream.addOrUpdateConsumer(stream: stream, config: config)
        } catch {
            // The server refuses to change a consumer's storage.
            guard let existing = try? host.jetStream.consumerInfo(stream: stream, name: config.durableName!), !existing.memoryStorage else { throw error }
            host.logger.notice("task consumer moved from file to memory storage", metadata: ["mesh.shard": "\(shard)"])
            try host.jetStream.deleteConsumer(stream: stream, name: existing.name)
            return try host.jetStream.addOrUpdateConsumer(stream: stream, config: config)
        }
    }

    private init(shard: Int, epoch: UInt64, consumer: PullConsumer, host: TaskHost) {
        self.shard = shard
        self.epoch = epoch
        self.consumer = consumer
        self.host = host
        state = Mutex(State(queue: TaskQueue(aging: host.settings.aging)))
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        let dimensions = [("shard", String(shard))]
        pendingGauge = Gauge(label: "mesh_task_consumer_pending", dimensions: dimensions)
        ackPendingGauge = Gauge(label: "mesh_task_consumer_ack_pending", dimensions: dimensions)
        maxAckPendingGauge = Gauge(label: "mesh_task_consumer_max_ack_pending", dimensions: dimensions)
        maxAckPendingGauge.record(Double(host.settings.maxInFlight))
    }

    private var logMetadata: Logger.Metadata { ["mesh.shard": "\(shard)", "mesh.shard.epoch": "\(epoch)"] }

    // MARK: Loops

    /// Fetches while there is room, until ``stop()``. Timed work (held tasks, in-progress
    /// acknowledgements, `running` events, gauges) is done by the worker's one loop over all
    /// its shards (``housekeep(now:)``, ``refreshGauges()``), not by a timer per shard.
    func run() async {
        let maxBatch = 128
        var wakeIterator = wakeups.makeAsyncIterator()
        var failures = 0
        while !Task.isCancelled {
            let (room, stopped) = state.withLock { ($0.stopped ? 0 : host.settings.maxInFlight - $0.inFlight, $0.stopped) }
            if stopped { return }
            if room <= 0 {
                _ = await wakeIterator.next()  // a task settled
                continue
            }
            let messages: [JetStreamMessage]
            do {
                messages = try await consumer.fetch(batch: min(room, maxBatch), expires: Self.pullExpiry)
                failures = 0
            } catch {
                if state.withLock({ $0.stopped }) || error.code == .connectionClosed { return }
                failures += 1
                if failures == 1 || failures % 20 == 0 {
                    host.logger.warning("task fetch failed", metadata: logMetadata.merging(["error": "\(error)"]) { $1 })
                }
                try? await Task.sleep(for: .milliseconds(min(2_000, 50 * failures)))
                if error.code == .noResponders || error.code == .notFound, !state.withLock({ $0.stopped }) {
                    // No consumer answers the pull: a restarted server forgot it (memory
                    // storage), or someone deleted it. Creating it again is idempotent.
                    let (shard, host) = (shard, host)
                    do {
                        _ = try await BlockingIO.run { () throws(NatsError) in try Self.ensureConsumer(shard: shard, host: host) }
                        host.logger.info("task consumer created again", metadata: logMetadata)
                    } catch {
                        host.logger.debug("task consumer not created yet", metadata: logMetadata.merging(["error": "\(error)"]) { $1 })
                    }
                }
                continue
            }
            if messages.isEmpty { continue }
            state.withLock { $0.inFlight += messages.count }
            for message in messages { admit(message) }
            pump()
        }
    }

    /// One round of timed work, called by the worker every ``housekeepingTick`` for every
    /// shard it serves: held tasks whose time came back into the queue, `running` events,
    /// and in-progress acknowledgements for tasks waiting or running longer than a third of
    /// the ack wait. Never blocks.
    func housekeep(now: ContinuousClock.Instant) {
        let progressEvery = host.settings.ackWait / 3
        let (due, progressDue) = state.withLock { state -> (Bool, Bool) in
            let progressDue = now - state.lastProgress >= progressEvery
            if progressDue { state.lastProgress = now }
            let ready = state.held.filter { $0.until <= now }
            guard !ready.isEmpty else { return (false, progressDue) }
            state.held.removeAll { $0.until <= now }
            for item in ready {
                state.queue.push(item.pending, agent: item.pending.agent.rawValue, priority: Self.priorityClass(item.pending.envelope.priority), at: item.pending.receivedAt)
            }
            return (true, progressDue)
        }
        if due { pump() }
        recordLongRunning(now: now)
        if progressDue {
            let waiting = state.withLock { state -> [JetStreamMessage] in
                var all: [JetStreamMessage] = []
                state.queue.forEach { if now - $0.receivedAt >= progressEvery { all.append($0.message) } }
                for item in state.held where now - item.pending.receivedAt >= progressEvery { all.append(item.pending.message) }
                for item in state.running.values where now - item.receivedAt >= progressEvery { all.append(item.message) }
                return all
            }
            for message in waiting { try? message.inProgress() }
        }
    }

    /// How long one pull request stays open on the server. A request returns as soon as a
    /// task arrives, so this sets only the idle cost (one request per shard per expiry) and
    /// how long a consumer may wait after NATS lost its open request (a server restart).
    /// On a shard move the old owner's open request is harmless: it unsubscribes, and the
    /// server hands nothing to a request whose inbox has no interest (tested by
    /// `AbandonedPullTests`).
    static let pullExpiry = Duration.seconds(2)

    /// How often the worker calls ``housekeep(now:)``: the precision of held tasks' delays.
    static let housekeepingTick = Duration.milliseconds(50)

    /// Reads the consumer's pending and ack-pending counts into the gauges (one JetStream
    /// API request; the worker calls it every few seconds per shard).
    func refreshGauges() async {
        guard !state.withLock({ $0.stopped }) else { return }
        let consumer = self.consumer
        if let info = try? await BlockingIO.run({ () throws(NatsError) -> ConsumerInfo in try consumer.info() }) {
            pendingGauge.record(Double(info.numPending))
            ackPendingGauge.record(Double(info.numAckPending))
        }
    }

    /// Publishes the `running` event of tasks that have run for ``TaskSettings/runningEventAfter``.
    /// It may reach the events stream after the task's outcome when the task ends meanwhile;
    /// the history keeps the furthest state whatever the order (``TaskHistory``).
    private func recordLongRunning(now: ContinuousClock.Instant) {
        let after = host.settings.runningEventAfter
        let due = state.withLock { state -> [Pending] in
            var due: [Pending] = []
            for (id, pending) in state.running where !pending.runningRecorded {
                guard let since = pending.runningSince, now - since >= after else { continue }
                state.running[id]?.runningRecorded = true
                due.append(pending)
            }
            return due
        }
        for pending in due { publishRunning(pending) }
    }

    private func publishRunning(_ pending: Pending) {
        publish(record(pending, state: .running), reason: "attempt \(pending.attempt) started", then: nil)
    }

    /// Stops at once: no more fetches; queued tasks are nak'ed so the shard's new owner gets
    /// them without waiting for the ack wait. Running tasks finish and settle here.
    func stop() {
        let queued = state.withLock { state -> [Pending] in
            state.stopped = true
            var all = state.queue.removeAll { _ in true }
            all += state.held.map(\.pending)
            state.held.removeAll()
            state.inFlight -= all.count
            return all
        }
        for pending in queued { try? pending.message.nak() }
        try? consumer.unsubscribe()
        wake.yield()
        wake.finish()
        pendingGauge.record(0)
        ackPendingGauge.record(0)
    }

    // MARK: Admission

    private func admit(_ message: JetStreamMessage) {
        let attempt = Int(message.metadata?.numDelivered ?? 1)
        guard let envelope = try? TaskEnvelope(serializedBytes: message.payload), !envelope.taskId.isEmpty else {
            host.logger.warning("undecodable task terminated", metadata: logMetadata.merging(["mesh.subject": "\(message.subject)"]) { $1 })
            host.metrics.failed.increment()
            settle(message) { try $0.term() }
            return
        }
        guard let agent = try? AgentID(envelope.agentId), message.subject == host.subjects.task(shard: shard, agent: agent) else {
            var record = TaskRecord(envelope: envelope, state: .failed)
            record.attempts = UInt32(attempt)
            record.error = MeshError(.invalidArgument, "the task's agent id does not match its subject").errorReply
            finish(message, record: record, reason: "refused: agent id does not match the subject") { try $0.term() }
            host.metrics.failed.increment()
            return
        }
        let pending = Pending(message: message, envelope: envelope, agent: agent, attempt: attempt, receivedAt: .now)
        if host.isCancelled(envelope.taskId) {
            cancelled(pending, reason: "cancelled before it ran")
            return
        }
        if let expiry = expiredError(envelope) {
            expire(pending, error: expiry, startedAt: nil)
            return
        }
        state.withLock { $0.queue.push(pending, agent: agent.rawValue, priority: Self.priorityClass(envelope.priority), at: pending.receivedAt) }
    }

    static func priorityClass(_ priority: TaskPriority) -> TaskPriorityClass {
        switch priority {
        case .high: .high
        case .low: .low
        default: .normal
        }
    }

    private func expiredError(_ envelope: TaskEnvelope) -> MeshError? {
        guard envelope.deadlineUnixMs > 0, Self.nowMs() >= envelope.deadlineUnixMs else { return nil }
        return MeshError(.timeout, "the task's deadline passed before it could run")
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: Dispatch

    /// Hands queued tasks to idle agents.
    private func pump() {
        while true {
            let next = state.withLock { state -> Pending? in
                guard !state.stopped else { return nil }
                let busy = state.busy
                guard let pending = state.queue.pop(now: .now, isBusy: { busy.contains($0) }) else { return nil }
                state.busy.insert(pending.agent.rawValue)
                return pending
            }
            guard let next else { return }
            dispatch(next)
        }
    }

    private func dispatch(_ item: Pending) {
        var pending = item
        if host.isCancelled(pending.envelope.taskId) {
            release(pending.agent)
            cancelled(pending, reason: "cancelled before it ran")
            return
        }
        if let expiry = expiredError(pending.envelope) {
            release(pending.agent)
            expire(pending, error: expiry, startedAt: nil)
            return
        }
        let cell: AgentCell
        switch host.target(pending.agent) {
        case .ready(let found): cell = found
        case .starting:
            hold(pending, for: .milliseconds(50))
            return
        case .unknown where ContinuousClock.now - openedAt < Self.startGrace:
            hold(pending, for: .milliseconds(100))  // the shard was just taken: its agents may still be loading
            return
        case .unknown:
            release(pending.agent)
            attemptFailed(pending, error: MeshError(.notFound, "agent \(pending.agent) is not running on its shard's owner"))
            return
        }
        let started = Date()
        pending.startedAt = started
        pending.runningSince = .now
        pending.runningRecorded = host.settings.runningEventAfter == .zero
        host.metrics.queueWait.recordNanoseconds((ContinuousClock.now - pending.receivedAt).totalNanoseconds)
        state.withLock { $0.running[pending.envelope.taskId] = pending }
        if pending.runningRecorded { publishRunning(pending) }
        let deadline: ContinuousClock.Instant? = pending.envelope.deadlineUnixMs > 0
            ? ContinuousClock.now + .milliseconds(pending.envelope.deadlineUnixMs - Self.nowMs()) : nil
        let clock = ContinuousClock.now
        let dispatched = pending
        do {
            try cell.send(pending.envelope.action, payload: pending.envelope.payload, deadline: deadline) { [self] result in
                host.metrics.duration.recordNanoseconds((ContinuousClock.now - clock).totalNanoseconds)
                completed(dispatched, result)
            }
        } catch {
            _ = state.withLock { $0.running.removeValue(forKey: pending.envelope.taskId) }
            switch error.code {
            case .busy:
                hold(pending, for: error.retryAfter ?? .milliseconds(20))
            case .timeout:
                release(pending.agent)
                expire(pending, error: error, startedAt: started)
            default:
                release(pending.agent)
                attemptFailed(pending, error: error)
            }
        }
    }

    private func hold(_ pending: Pending, for delay: Duration) {
        state.withLock { state in
            state.busy.remove(pending.agent.rawValue)
            state.held.append((pending, ContinuousClock.now + delay))
        }
    }

    private func release(_ agent: AgentID) {
        _ = state.withLock { $0.busy.remove(agent.rawValue) }
    }

    /// The agent answered (or the runtime gave up on the action).
    private func completed(_ pending: Pending, _ result: Result<[UInt8], MeshError>) {
        let wasCancelled = state.withLock { state -> Bool in
            state.running.removeValue(forKey: pending.envelope.taskId)
            state.busy.remove(pending.agent.rawValue)
            return state.cancelledRunning.remove(pending.envelope.taskId) != nil
        }
        defer { pump() }
        if wasCancelled { return }  // settled when it was cancelled
        switch result {
        case .success(let bytes):
            var record = record(pending, state: .succeeded)
            if bytes.count <= TaskRules.maxResultBytes {
                record.result = bytes
            } else {
                record.error = MeshError(.tooLarge, "the result (\(bytes.count) bytes) is larger than the history keeps (\(TaskRules.maxResultBytes))").errorReply
            }
            host.metrics.succeeded.increment()
            finish(pending.message, record: record, reason: "succeeded on attempt \(pending.attempt)") { try $0.ack() }
        case .failure(let error):
            if error.code == .timeout, let expiry = expiredError(pending.envelope) {
                expire(pending, error: expiry, startedAt: pending.startedAt)
            } else {
                attemptFailed(pending, error: error)
            }
        }
    }

    // MARK: Outcomes

    private func attemptFailed(_ pending: Pending, error: MeshError) {
        if state.withLock({ $0.stopped }) {
            // The shard moved: its new owner decides.
            settle(pending.message) { try $0.nak() }
            return
        }
        let maxAttempts = pending.envelope.maxAttempts == 0 ? TaskRules.defaultMaxAttempts : Int(pending.envelope.maxAttempts)
        var record = record(pending, state: .retrying)
        record.error = error.errorReply
        if pending.attempt < maxAttempts {
            var generator = SystemRandomNumberGenerator()
            let delay = host.settings.retry.delay(afterAttempt: pending.attempt, using: &generator)
            host.metrics.retried.increment()
            publish(record, reason: "attempt \(pending.attempt) of \(maxAttempts) failed (\(error.code)); retry in \(delay.totalMilliseconds) ms", then: nil)
            settle(pending.message) { try $0.nak(delay: delay) }
            return
        }
        record.state = .deadLettered
        record.finishedAtUnixMs = Self.nowMs()
        let final = record
        host.metrics.deadLettered.increment()
        let letter = DeadLetter(
            task: pending.envelope, error: error.errorReply, attempts: UInt32(pending.attempt), deadLetteredAtUnixMs: Self.nowMs(),
            nodeId: host.node.rawValue)
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = DeadLetter.messageType.rawValue
        let subject = host.subjects.deadLetter(shard: shard, agent: pending.agent)
        let msgID = "\(pending.envelope.taskId).dlq-\(pending.envelope.rerun)"
        do {
            try host.jetStream.publishAsync(subject, payload: letter.serializedBytes(), headers: headers, msgId: msgID) { [self] result in
                switch result {
                case .success:
                    finish(pending.message, record: final, reason: "out of attempts (\(maxAttempts)): \(error.code)") { try $0.term() }
                case .failure(let publishError):
                    host.logger.warning("dead letter not stored; the task is redelivered", metadata: logMetadata.merging(["error": "\(publishError)"]) { $1 })
                    settle(pending.message) { try $0.nak(delay: .seconds(1)) }
                }
            }
        } catch {
            settle(pending.message) { try $0.nak(delay: .seconds(1)) }
        }
    }

    private func expire(_ pending: Pending, error: MeshError, startedAt: Date?) {
        var record = record(pending, state: .expired)
        record.error = error.errorReply
        if let startedAt { record.startedAtUnixMs = Int64(startedAt.timeIntervalSince1970 * 1000) }
        host.metrics.expired.increment()
        finish(pending.message, record: record, reason: "deadline passed") { try $0.term() }
    }

    private func cancelled(_ pending: Pending, reason: String) {
        var record = record(pending, state: .cancelled)
        record.error = MeshError(.conflict, "cancelled by an operator").errorReply
        host.metrics.cancelled.increment()
        finish(pending.message, record: record, reason: reason) { try $0.term() }
    }

    /// A cancel request for `taskId` arrived: a queued task ends now; a running one ends now
    /// and its outcome is ignored when the agent answers.
    func cancel(_ taskId: String) {
        enum Found { case queued(Pending), running(Pending), none }
        let found = state.withLock { state -> Found in
            if let queued = state.queue.removeAll(where: { $0.envelope.taskId == taskId }).first { return .queued(queued) }
            if let index = state.held.firstIndex(where: { $0.pending.envelope.taskId == taskId }) {
                return .queued(state.held.remove(at: index).pending)
            }
            if let running = state.running[taskId], !state.cancelledRunning.contains(taskId) {
                state.cancelledRunning.insert(taskId)
                return .running(running)
            }
            return .none
        }
        switch found {
        case .queued(let pending): cancelled(pending, reason: "cancelled while queued")
        case .running(let pending): cancelled(pending, reason: "cancelled while running")
        case .none: break
        }
    }

    /// Stores the terminal event, then settles the message (`then`); if the event cannot be
    /// stored the message is nak'ed (redelivered) so the task still reaches a terminal state.
    private func finish(_ message: JetStreamMessage, record: TaskRecord, reason: String, then: @escaping @Sendable (JetStreamMessage) throws -> Void) {
        publish(record, reason: reason) { [self] stored in
            if stored {
                settle(message, then)
            } else {
                settle(message) { try $0.nak(delay: .seconds(1)) }
            }
        }
    }

    /// Publishes a task event once. It goes without a `Nats-Msg-Id`: it is never published
    /// again (a failure naks the task, whose next attempt makes a new event), and each id
    /// would sit in the events stream's duplicate window — at thousands of tasks a second a
    /// map of a million ids that nats-server keeps, trims and scans in its garbage collector.
    private func publish(_ record: TaskRecord, reason: String, then: (@Sendable (Bool) -> Void)?) {
        let event = TaskEvents.message(record, reason: reason, subjects: host.subjects)
        let failures = host.metrics.eventFailures
        do {
            try host.jetStream.publishAsync(event.subject, payload: event.payload, headers: event.headers, msgId: nil) { result in
                if case .failure = result { failures.increment() }
                then?(result.isSuccess)
            }
        } catch {
            failures.increment()
            then?(false)
        }
    }

    /// Acknowledges/naks/terminates a fetched message once and makes room for the next fetch.
    private func settle(_ message: JetStreamMessage, _ body: (JetStreamMessage) throws -> Void) {
        try? body(message)
        state.withLock { $0.inFlight = max(0, $0.inFlight - 1) }
        wake.yield()
    }

    private func record(_ pending: Pending, state: TaskState) -> TaskRecord {
        var record = TaskRecord(envelope: pending.envelope, state: state)
        record.attempts = UInt32(pending.attempt)
        record.nodeId = host.node.rawValue
        if let startedAt = pending.startedAt { record.startedAtUnixMs = Int64(startedAt.timeIntervalSince1970 * 1000) }
        if state.isTerminal { record.finishedAtUnixMs = Self.nowMs() }
        record.updatedAtUnixMs = Self.nowMs()
        return record
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
