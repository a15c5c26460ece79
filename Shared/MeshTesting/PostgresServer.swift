import Foundation
import LocalServers

/// A throwaway PostgreSQL cluster for a test: `initdb` into a temp directory, the server
/// on a free port on 127.0.0.1 and a unix socket in that directory, durability switched
/// off for speed. Torn down (and the directory removed) when released or on `stop`.
///
/// ```swift
/// let server = try await PostgresServer.start()
/// defer { server.stop() }
/// let conninfo = server.connectionString   // "host=/tmp/mesh-pg-… port=… dbname=postgres user=postgres"
/// ```
///
/// As root, the cluster runs as the `postgres` account (see `LocalPostgres`).
public final class PostgresServer: Sendable {
    private let server: LocalPostgres

    /// TCP port on 127.0.0.1 (the unix socket uses the same number).
    public var port: Int { server.port }
    /// The temp directory: `data/`, the unix socket and `postgres.log`.
    public var directory: String { server.directory }
    /// The database superuser (trust authentication, no password).
    public var user: String { server.user }
    /// The directory holding the unix socket.
    public var socketDirectory: String { server.socketDirectory }
    /// The cluster's data directory.
    public var dataDirectory: String { server.dataDirectory }
    /// `host=<socketDirectory> port=<port> dbname=postgres user=<user>`.
    public var connectionString: String { server.connectionString() }
    /// `host=127.0.0.1 port=<port> dbname=postgres user=<user>`.
    public var tcpConnectionString: String { server.tcpConnectionString() }

    /// The directory with the server binaries, or nil when PostgreSQL is not installed.
    public static var binDirectory: String? { LocalPostgres.binDirectory }

    private init(server: LocalPostgres) { self.server = server }

    /// Creates a cluster in a temp directory and starts it.
    /// - Throws: `HarnessError` when the binaries are missing or the server does not start.
    public static func start() async throws -> PostgresServer {
        let directory = try LocalHost.makeTempDirectory(prefix: "pg")
        do {
            return PostgresServer(server: try await LocalPostgres(directory: directory, port: try LocalHost.freePort(), durable: false))
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Fast shutdown (sessions terminated, checkpoint written); the cluster stays.
    public func stopKeepingData() { server.stop() }

    /// Immediate shutdown like a crash (no checkpoint; `restart` replays the WAL).
    public func kill() { server.kill() }

    /// Starts the server again on the same port with the same cluster.
    public func restart() async throws { try await server.restart() }

    /// Stops the server and removes its temp directory.
    public func stop() {
        server.stop()
        try? FileManager.default.removeItem(atPath: server.directory)
    }

    /// The server's log (for failure messages).
    public func logTail() -> String { server.logTail() }

    deinit { stop() }
}
