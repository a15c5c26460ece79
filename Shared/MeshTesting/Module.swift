// Module MeshTesting.
