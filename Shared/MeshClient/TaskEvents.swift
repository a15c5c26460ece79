import Foundation
public import MeshCore
public import MeshProto
public import Nats

/// Task events: one `Event` per transition on `<prefix>.evt.task.<state>` (stream
/// `MESH_EVENTS`), domain `task`, type the state's name, the task's ``TaskRecord`` as the
/// payload, attributes `task` (id) and `attempt`. The event id is a fresh time-ordered id; a
/// publisher that may publish an event again sends it as the `Nats-Msg-Id`, so it is stored
/// once (the workers publish each event once, without one). The history writer applies
/// them idempotently (see ``progress(of:)``).
public enum TaskEvents {
    /// One event, ready to publish.
    public struct Message: Sendable {
        public var subject: String
        public var payload: [UInt8]
        public var headers: NatsHeaders
        /// The event id; the `Nats-Msg-Id` of a publisher that may publish it again.
        public var id: String
    }

    /// The event of `record`'s current state.
    /// - Parameter reason: why (an error message or a short note; never a payload).
    public static func message(_ record: TaskRecord, reason: String, subjects: Subjects) -> Message {
        let id = TimeOrderedID.make()
        let event = Event(
            id: id, domain: "task", type: record.state.name, agentId: record.agentId, nodeId: record.nodeId, reason: reason,
            timestampUnixMs: Int64(Date().timeIntervalSince1970 * 1000),
            attributes: ["task": record.taskId, "attempt": String(record.attempts)], payload: record.serializedBytes())
        var headers = NatsHeaders()
        headers[MeshHeader.messageType] = Event.messageType.rawValue
        return Message(subject: subjects.event(domain: "task", name: record.state.name), payload: event.serializedBytes(), headers: headers, id: id)
    }

    /// The task record an event carries, or nil when it is not a task event.
    public static func record(of event: Event) -> TaskRecord? {
        guard event.domain == "task", let record = try? TaskRecord(serializedBytes: event.payload), !record.taskId.isEmpty else { return nil }
        return record
    }

    /// How far along a record is, for "a later state never overwritten by an earlier one":
    /// re-runs from the dead-letter queue first, then terminal before anything else, then
    /// the attempt, then the state within an attempt (submitted < running < retrying).
    /// Every terminal state of one run has the same progress, so the first terminal state
    /// recorded wins and a duplicated execution's later result never replaces it.
    public static func progress(of record: TaskRecord) -> Int64 {
        let rerun = Int64(min(record.rerun, 1 << 20)) << 40
        if record.state.isTerminal { return rerun | (1 << 39) }
        let attempt = Int64(min(record.attempts, 1 << 20)) << 8
        let rank: Int64 = switch record.state {
        case .submitted: 1
        case .running: 2
        case .retrying: 3
        default: 0
        }
        return rerun | attempt | rank
    }
}
