public import Foundation
public import MeshCore
public import MeshProto

/// The JSON form of durable tasks, shared by the gateway (`/api/v1/tasks…`) and `meshctl`.
///
/// A submission document:
/// ```json
/// {
///   "agent": "work-1", "action": "run",
///   "payload": {"n": 1},          // any JSON value; a string is sent as its UTF-8 bytes
///   "priority": "normal",         // high | normal | low
///   "deadline": "2026-01-01T00:00:00Z",  // or "deadline_ms": 60000 (from now)
///   "max_attempts": 5,            // 1...100
///   "idempotency_key": "order-42" // resubmits with the same key are one task
/// }
/// ```
/// Unknown keys are rejected (they are usually typos). A task record is written with
/// `task_id`, `agent`, `action`, `priority`, `state`, `attempts`, `max_attempts`, `node`,
/// `submitted_at`, `started_at`, `finished_at`, `deadline` (RFC 3339 or null), `rerun`,
/// `idempotency_key` when set, `result` (UTF-8 text) when succeeded and `error` when failed.
public enum TaskDocument {
    /// Keys a submission document may have.
    public static let submissionKeys: Set<String> = [
        "agent", "action", "payload", "priority", "deadline", "deadline_ms", "max_attempts", "idempotency_key",
    ]

    /// The priority called `name` (`high`, `normal`, `low`).
    public static func priority(named name: String) -> TaskPriority? {
        switch name {
        case "high": .high
        case "normal": .normal
        case "low": .low
        default: nil
        }
    }

    /// The name of a priority; unknown values read as `normal`.
    public static func name(_ priority: TaskPriority) -> String {
        switch priority {
        case .high: "high"
        case .low: "low"
        default: "normal"
        }
    }

    /// Builds a submission from a decoded JSON object.
    /// - Parameter idempotencyKey: a key given outside the body (the `Idempotency-Key`
    ///   header); it must agree with the body's if both are set.
    /// - Throws: ``MeshError`` `invalid_argument` or `invalid_id` naming the bad key.
    public static func submission(object: [String: Any], idempotencyKey: String? = nil, now: Date = Date()) throws(MeshError) -> TaskSubmission {
        if let unknown = object.keys.sorted().first(where: { !submissionKeys.contains($0) }) {
            throw MeshError(.invalidArgument, "unknown key \(String(reflecting: String(unknown.prefix(64)))) in the task")
        }
        guard let agent = object["agent"] as? String else { throw MeshError(.invalidArgument, "agent is required (an agent id)") }
        guard let action = object["action"] as? String else { throw MeshError(.invalidArgument, "action is required") }
        try TaskRules.validateAction(action)
        var submission = TaskSubmission(agent: try AgentID(agent), action: action)
        if let payload = object["payload"], !(payload is NSNull) {
            if let text = payload as? String {
                submission.payload = Array(text.utf8)
            } else {
                guard let data = try? JSONSerialization.data(withJSONObject: payload, options: [.fragmentsAllowed, .sortedKeys]) else {
                    throw MeshError(.invalidArgument, "payload must be a JSON value")
                }
                submission.payload = Array(data)
            }
        }
        if let value = object["priority"] {
            guard let name = value as? String, let priority = priority(named: name) else {
                throw MeshError(.invalidArgument, "priority must be high, normal or low")
            }
            submission.priority = priority
        }
        switch (object["deadline"], object["deadline_ms"]) {
        case (.some, .some): throw MeshError(.invalidArgument, "give deadline or deadline_ms, not both")
        case (let value?, nil):
            guard let text = value as? String, let date = parseRFC3339(text) else {
                throw MeshError(.invalidArgument, "deadline must be an RFC 3339 time")
            }
            submission.deadline = date
        case (nil, let value?):
            let milliseconds = try wholeNumber(value, "deadline_ms", in: 1...(366 * 86_400_000))
            submission.deadline = now.addingTimeInterval(Double(milliseconds) / 1000)
        case (nil, nil): break
        }
        if let value = object["max_attempts"] {
            submission.maxAttempts = try wholeNumber(value, "max_attempts", in: 1...TaskRules.maxAttemptsLimit)
        }
        var bodyKey: String?
        if let value = object["idempotency_key"] {
            guard let key = value as? String else { throw MeshError(.invalidArgument, "idempotency_key must be a string") }
            bodyKey = key
        }
        if let bodyKey, let idempotencyKey, bodyKey != idempotencyKey {
            throw MeshError(.invalidArgument, "idempotency_key in the body and the Idempotency-Key header differ")
        }
        submission.idempotencyKey = bodyKey ?? idempotencyKey
        return submission
    }

    private static func wholeNumber(_ value: Any, _ name: String, in range: ClosedRange<Int>) throws(MeshError) -> Int {
        guard !(value is String), !(value is Bool), let number = value as? NSNumber, number.doubleValue == number.doubleValue.rounded(),
            number.doubleValue >= Double(range.lowerBound), number.doubleValue <= Double(range.upperBound)
        else { throw MeshError(.invalidArgument, "\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound)") }
        return number.intValue
    }

    /// A task record as a JSON object.
    public static func object(_ record: TaskRecord) -> [String: Any] {
        var object: [String: Any] = [
            "task_id": record.taskId, "agent": record.agentId, "action": record.action, "priority": name(record.priority),
            "state": record.state.name, "attempts": Int(record.attempts), "max_attempts": Int(record.maxAttempts), "node": record.nodeId,
            "submitted_at": time(record.submittedAtUnixMs), "started_at": time(record.startedAtUnixMs),
            "finished_at": time(record.finishedAtUnixMs), "deadline": time(record.deadlineUnixMs), "rerun": Int(record.rerun),
        ]
        if !record.idempotencyKey.isEmpty { object["idempotency_key"] = record.idempotencyKey }
        if record.state == .succeeded { object["result"] = String(decoding: record.result, as: UTF8.self) }
        if let error = record.error { object["error"] = self.object(error) }
        return object
    }

    /// A dead-lettered task as a JSON object.
    public static func object(_ entry: DeadLetterEntry) -> [String: Any] {
        let letter = entry.deadLetter
        return [
            "sequence": Int(clamping: entry.sequence), "task_id": letter.task.taskId, "agent": letter.task.agentId,
            "action": letter.task.action, "attempts": Int(letter.attempts), "node": letter.nodeId,
            "error": letter.error.map { object($0) as Any } ?? NSNull(), "dead_lettered_at": time(letter.deadLetteredAtUnixMs),
        ]
    }

    static func object(_ error: ErrorReply) -> [String: Any] { ["code": error.code, "message": error.message] }

    /// Milliseconds since 1970 as RFC 3339 text, or null for 0 (unset).
    static func time(_ milliseconds: Int64) -> Any { rfc3339(unixMs: milliseconds) ?? NSNull() }
}
