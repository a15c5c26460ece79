// Tests that import MeshTesting also get the local-server building blocks it is made of
// (ChildProcess, LocalHTTP, LocalNatsServer, LocalPostgres).
@_exported public import LocalServers
