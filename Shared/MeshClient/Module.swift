// Module MeshClient: typed clients of the mesh (registry, actions) for services and meshctl.
