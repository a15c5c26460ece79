// Module MeshSupervision: pure supervision and shard-placement policy.
