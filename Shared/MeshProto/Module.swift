// Module MeshProto.
