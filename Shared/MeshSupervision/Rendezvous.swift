public import MeshCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Capacity-weighted rendezvous (highest random weight) hashing of shards over nodes.
///
/// `score(shard, node) = weight / -ln(u)` with `u ∈ (0, 1)` from a 64-bit hash of the node
/// id and the shard: `splitmix64(fnv1a64(node) ^ splitmix64(shard + γ))` (FNV-1a from
/// ``MeshCore/ShardMap/fnv1a64(_:)``, the splitmix64 finaliser as mixer, γ the golden-ratio
/// constant), whose top 53 bits give `u = (bits + 0.5) / 2^53`. The shard goes to the node
/// with the highest score; ties (practically impossible) go to the smaller node id. A node
/// wins a shard with probability `weight / Σ weights`, and adding or removing a node only
/// changes the winner of shards that the node wins or won.
///
/// ```swift
/// let owner = Rendezvous.winner(shard: 7, among: [(nodeA, 100), (nodeB, 200)])
/// ```
public enum Rendezvous {
    /// The splitmix64 finaliser: a bijective 64-bit mixer with full avalanche.
    @inlinable
    public static func mix64(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The 64-bit hash of (node, shard) that the score is drawn from.
    public static func hash(shard: Int, node: NodeID) -> UInt64 {
        hash(shard: shard, nodeHash: ShardMap.fnv1a64(node.rawValue))
    }

    static func hash(shard: Int, nodeHash: UInt64) -> UInt64 {
        mix64(nodeHash ^ mix64(UInt64(truncatingIfNeeded: shard) &+ 0x9e37_79b9_7f4a_7c15))
    }

    /// The node's score for `shard`: `weight / -ln(u)`; 0 for a weight that is not positive.
    public static func score(shard: Int, node: NodeID, weight: Double) -> Double {
        score(hash: hash(shard: shard, node: node), weight: weight)
    }

    static func score(hash: UInt64, weight: Double) -> Double {
        guard weight > 0, weight.isFinite else { return 0 }
        let unit = (Double(hash >> 11) + 0.5) / 9_007_199_254_740_992  // 2^53, so unit ∈ (0, 1)
        return weight / -log(unit)
    }

    /// The node with the highest score for `shard`, or `nil` when no node has a positive weight.
    public static func winner(shard: Int, among nodes: some Sequence<(NodeID, Double)>) -> NodeID? {
        var best: (node: NodeID, score: Double)?
        for (node, weight) in nodes where weight > 0 && weight.isFinite {
            let score = score(shard: shard, node: node, weight: weight)
            if let current = best, current.score > score || (current.score == score && current.node < node) { continue }
            best = (node, score)
        }
        return best?.node
    }
}
