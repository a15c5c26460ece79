/// Every kind of event the mesh emits on `<prefix>.evt.<domain>.<name>` — the one place
/// event names are spelled. The agent ones make up an agent's timeline.
public struct EventKind: Hashable, Sendable, CustomStringConvertible {
    /// First token after `evt`: `agent`, `node`, `shard`, `group`, `supervisor`.
    public let domain: String
    /// Second token: what happened.
    public let name: String

    init(_ domain: String, _ name: String) {
        self.domain = domain
        self.name = name
    }

    public var description: String { "\(domain).\(name)" }

    // Agent timeline.
    public static let agentCreated = EventKind("agent", "created")
    public static let agentUpdated = EventKind("agent", "updated")
    public static let agentPlaced = EventKind("agent", "placed")
    public static let agentStarted = EventKind("agent", "started")
    public static let agentFailed = EventKind("agent", "failed")
    public static let agentRestarted = EventKind("agent", "restarted")
    public static let agentMigrated = EventKind("agent", "migrated")
    public static let agentStopped = EventKind("agent", "stopped")
    public static let agentDeleted = EventKind("agent", "deleted")
    /// A published spec the registry refused (invalid); the reason says why.
    public static let agentRejected = EventKind("agent", "rejected")
    // Cluster.
    public static let nodeJoined = EventKind("node", "joined")
    public static let nodeLost = EventKind("node", "lost")
    public static let nodeDraining = EventKind("node", "draining")
    /// An operator's drain ended (undrained, or the node restarted).
    public static let nodeUndrained = EventKind("node", "undrained")
    public static let shardMoved = EventKind("shard", "moved")
    public static let groupFailed = EventKind("group", "failed")
    public static let supervisorElected = EventKind("supervisor", "elected")

    // Tasks: one kind per task state (`TaskState.name`).
    public static let taskSubmitted = EventKind("task", "submitted")
    public static let taskRunning = EventKind("task", "running")
    public static let taskRetrying = EventKind("task", "retrying")
    public static let taskSucceeded = EventKind("task", "succeeded")
    public static let taskFailed = EventKind("task", "failed")
    public static let taskExpired = EventKind("task", "expired")
    public static let taskCancelled = EventKind("task", "cancelled")
    public static let taskDeadLettered = EventKind("task", "dead_lettered")
    /// Every task transition's kind.
    public static let taskTransitions: [EventKind] = [
        taskSubmitted, taskRunning, taskRetrying, taskSucceeded, taskFailed, taskExpired, taskCancelled, taskDeadLettered,
    ]

    /// The task event kind named `name` (a task state's name), or nil.
    public static func task(named name: String) -> EventKind? { taskTransitions.first { $0.name == name } }

    // Alerts: one kind per rule (`alert.<rule>`); the event's attributes say whether it
    // fired or resolved. Rule names are id tokens (checked when rules are loaded).
    /// The event kind of alert rule `rule`.
    /// - Throws: ``MeshError`` `invalid_id` when `rule` is not a legal id token.
    public static func alert(rule: String) throws(MeshError) -> EventKind {
        try Identifier.validate(rule, kind: "alert rule name")
        return EventKind("alert", rule)
    }

    /// The agent timeline's kinds.
    public static let agentTimeline: [EventKind] = [
        agentCreated, agentUpdated, agentPlaced, agentStarted, agentFailed, agentRestarted, agentMigrated, agentStopped, agentDeleted,
        agentRejected,
    ]

    /// All kinds, for validation of what arrives from the wire.
    public static let all: [EventKind] = agentTimeline + [nodeJoined, nodeLost, nodeDraining, nodeUndrained, shardMoved, groupFailed, supervisorElected]
        + taskTransitions
}

extension Subjects {
    /// `<prefix>.evt.<domain>.<name>` of an event kind.
    public func event(_ kind: EventKind) -> String { event(domain: kind.domain, name: kind.name) }
}
