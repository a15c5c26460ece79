/// Why a shard moved: the `reason` of a `mesh_shards` assignment, written by the supervisor's
/// planner and read by workers (a planned move hands the agents' state over, a lost node's
/// shards restart from their last checkpoint).
public enum ShardMoveReason: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The shard had no owner.
    case initial
    /// A node became eligible (joined and passed its hold-down, or stopped draining) and
    /// takes its quota of the shards.
    case nodeJoined = "node_joined"
    /// The owner died (missed heartbeats) or is unknown.
    case nodeLost = "node_lost"
    /// The owner is draining (or reports capacity 0).
    case drain
    /// Shards moved between nodes that were already eligible to keep each within its quota
    /// (a capacity change).
    case rebalance

    /// Whether the previous owner was alive when the shard moved, so it hands over.
    public var previousOwnerAlive: Bool {
        switch self {
        case .nodeJoined, .drain, .rebalance: true
        case .initial, .nodeLost: false
        }
    }

    public var description: String { rawValue }
}
