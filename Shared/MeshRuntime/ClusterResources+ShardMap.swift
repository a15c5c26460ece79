public import MeshCore
public import Nats

extension ClusterResources {
    /// Reads an existing cluster's shard map from its `mesh_cluster` bucket without
    /// creating or changing any stream or bucket — for clients such as `meshctl`.
    /// - Throws: ``MeshError`` `unavailable` when the cluster has not been created yet (no
    ///   service has started), `internal` when the stored count is corrupt; `NatsError`
    ///   when JetStream does not answer.
    public static func readShardMap(_ js: JetStream, subjects: Subjects) throws -> ShardMap {
        let cluster: KeyValue
        do { cluster = try js.keyValue(subjects.clusterBucket) } catch {
            guard error.code == .notFound else { throw error }
            throw MeshError(.unavailable, "no mesh cluster with prefix \(subjects.prefix) on this NATS server (bucket \(subjects.clusterBucket) missing)")
        }
        guard let entry = try cluster.get(shardCountKey), let count = Int(String(decoding: entry.value, as: UTF8.self)) else {
            throw MeshError(.internalError, "the cluster's shard count is missing or corrupt in \(cluster.bucket)/\(shardCountKey)")
        }
        return try ShardMap(shardCount: count)
    }
}
