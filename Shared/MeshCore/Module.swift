// Module MeshCore.
