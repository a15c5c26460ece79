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

    /// The agent timeline's kinds.
    public static let agentTimeline: [EventKind] = [
        agentCreated, agentUpdated, agentPlaced, agentStarted, agentFailed, agentRestarted, agentMigrated, agentStopped, agentDeleted,
        agentRejected,
    ]

    /// All kinds, for validation of what arrives from the wire.
    public static let all: [EventKind] = agentTimeline + [nodeJoined, nodeLost, nodeDraining, nodeUndrained, shardMoved, groupFailed, supervisorElected]
}

extension Subjects {
    /// `<prefix>.evt.<domain>.<name>` of an event kind.
    public func event(_ kind: EventKind) -> String { event(domain: kind.domain, name: kind.name) }
}
