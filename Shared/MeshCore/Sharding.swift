/// Maps agent ids to shards: `shard(id) = fnv1a64(utf8(id)) % shardCount`.
///
/// `shardCount` is fixed when a cluster is created (default 64) and read by every process
/// from the cluster's KV configuration, so all processes agree on every agent's shard.
public struct ShardMap: Sendable, Hashable {
    /// The default number of shards of a new cluster.
    public static let defaultShardCount = 64
    /// The largest supported shard count (shard numbers stay short subject tokens).
    public static let maxShardCount = 65_536

    /// Number of shards, in `1...maxShardCount`.
    public let shardCount: Int

    /// - Throws: ``MeshError`` `invalid_argument` when the count is outside `1...65536`.
    public init(shardCount: Int = ShardMap.defaultShardCount) throws(MeshError) {
        guard (1...Self.maxShardCount).contains(shardCount) else {
            throw MeshError(.invalidArgument, "shard count must be between 1 and \(Self.maxShardCount), got \(shardCount)")
        }
        self.shardCount = shardCount
    }

    /// The shard that owns `id`.
    public func shard(of id: AgentID) -> Int { Int(Self.fnv1a64(id.rawValue) % UInt64(shardCount)) }

    /// 64-bit FNV-1a of the UTF-8 bytes of `text`.
    public static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
