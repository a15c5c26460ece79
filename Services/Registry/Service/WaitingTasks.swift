import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Nats
import Synchronization

/// Records the tasks that wait: the `task.submitted` event of every task still in stream
/// `MESH_TASKS` ``lag`` after it was stored.
///
/// Submitters do not record their submissions: a stored event per task, delivered to the
/// history writer and acknowledged, cost about 15 % of the task throughput, and a task that
/// runs at once is recorded with its outcome anyway (its record carries the submission
/// time). What the history still needs is the tasks nobody has run yet — queued behind
/// others, held for a retry, their shard without an owner. Those are exactly the messages
/// the work-queue stream still holds, so the registry reads the stream itself, behind a lag:
/// every ``interval`` it reads (batched direct get) from where it stopped up to the messages
/// stored less than ``lag`` ago, and publishes a `task.submitted` event for each task found
/// (an acknowledged task has left the stream and is skipped by the server). Each stored task
/// is read once per registry instance; the cost follows the backlog, not the throughput.
///
/// The event's `Nats-Msg-Id` is `<task>.submitted.<rerun>`, so the registry instances (each
/// reads the stream) record a task once within the stream's duplicate window; the history
/// keeps the furthest state, so a `submitted` that arrives after a later state changes
/// nothing. A restarted instance reads from the stream's first task again. A task is listed
/// as `submitted` about ``lag`` + ``interval`` after its submission if it has not run by then.
final class WaitingTaskRecorder: Sendable {
    /// How old a stored task must be before it is recorded as waiting.
    static let lag: Duration = .seconds(1)
    /// How often the stream is read.
    static let interval: Duration = .milliseconds(500)
    /// Messages per direct get.
    static let batch = 256

    let js: JetStream
    let subjects: Subjects
    let logger: Logger
    /// The next stream sequence to read.
    private let cursor = Mutex<UInt64>(1)

    init(js: JetStream, subjects: Subjects, logger: Logger) {
        self.js = js
        self.subjects = subjects
        self.logger = logger
    }

    /// The periodic service that reads the stream.
    func service() -> PeriodicService {
        PeriodicService(every: Self.interval, onError: { [logger] error in
            logger.debug("waiting tasks not read", metadata: ["error": "\(error)"])
        }) {
            _ = try await self.recordWaiting()
        }
    }

    /// Reads the stream from the cursor up to the tasks stored less than ``lag`` ago and
    /// publishes a `task.submitted` event for each task found.
    /// - Parameter now: the current time (tests pass a later one to skip the lag).
    /// - Returns: how many tasks were recorded.
    @discardableResult
    func recordWaiting(now: Date = Date()) async throws(NatsError) -> Int {
        let cutoff = now.addingTimeInterval(-Double(Self.lag.totalMilliseconds) / 1000)
        var next = cursor.withLock { $0 }
        var recorded = 0
        defer { cursor.withLock { $0 = next } }
        while true {
            let messages = try await js.storedMessages(stream: subjects.tasksStream, from: next, batch: Self.batch)
            if messages.isEmpty, next > 1 {
                // Nothing new, or the stream was created again and numbers from 1 anew.
                let (js, stream) = (js, subjects.tasksStream)
                let last = try await BlockingIO.run { () throws(NatsError) in try js.streamInfo(stream).state.lastSeq }
                if last + 1 < next { next = 1 }
                return recorded
            }
            for message in messages {
                // The server's clock: a submitter's own submission time is not trusted here.
                guard let stored = message.headers["Nats-Time-Stamp"].flatMap(parseRFC3339) else {
                    next = message.sequence + 1
                    continue
                }
                if stored > cutoff { return recorded }  // too young: read again next round
                if let envelope = try? TaskEnvelope(serializedBytes: message.payload), !envelope.taskId.isEmpty {
                    try publishSubmitted(envelope, sequence: message.sequence)
                    recorded += 1
                }
                next = message.sequence + 1
            }
            if messages.count < Self.batch { return recorded }
        }
    }

    /// Publishes the task's `task.submitted` event; throws when the publish window is full
    /// (the task is read again next round).
    private func publishSubmitted(_ envelope: TaskEnvelope, sequence: UInt64) throws(NatsError) {
        var record = TaskRecord(envelope: envelope, state: .submitted)
        record.updatedAtUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        var event = TaskEvents.message(record, reason: "waiting to run", subjects: subjects)
        event.id = "\(envelope.taskId).submitted.\(envelope.rerun)"
        try js.publishAsync(event.subject, payload: event.payload, headers: event.headers, msgId: event.id) { [logger] result in
            if case .failure(let error) = result {
                logger.debug("task.submitted not stored", metadata: ["mesh.stream.seq": "\(sequence)", "error": "\(error)"])
            }
        }
    }
}
