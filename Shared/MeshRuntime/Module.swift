// Module MeshRuntime.
