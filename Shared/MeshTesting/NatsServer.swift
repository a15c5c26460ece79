import Foundation
import LocalServers

/// A real `nats-server` with JetStream for a test: free ports on 127.0.0.1, store in a
/// temp directory, torn down (and the directory removed) when released or on `stop`.
///
/// ```swift
/// let server = try await NatsServer.start()
/// defer { server.stop() }
/// let url = server.url   // "nats://127.0.0.1:PORT"
/// ```
///
/// The binary is `$MESH_NATS_SERVER`, else `nats-server` on `PATH`.
public final class NatsServer: Sendable {
    private let server: LocalNatsServer

    /// Client port on 127.0.0.1.
    public var port: Int { server.port }
    /// HTTP monitoring port on 127.0.0.1.
    public var monitorPort: Int { server.monitorPort }
    /// The temp directory holding the config, JetStream store and log.
    public var directory: String { server.directory }
    /// `nats://127.0.0.1:<port>`.
    public var url: String { server.url }

    private init(server: LocalNatsServer) { self.server = server }

    /// Starts a server and waits until it accepts connections.
    /// - Throws: `HarnessError` when the binary is missing or the server does not start.
    public static func start(jetstream: Bool = true) async throws -> NatsServer {
        let directory = try LocalHost.makeTempDirectory(prefix: "nats")
        do {
            let server = try await LocalNatsServer(
                directory: directory, port: try LocalHost.freePort(), monitorPort: try LocalHost.freePort(), jetstream: jetstream)
            return NatsServer(server: server)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Stops the server and keeps its store for `restart`.
    public func stopKeepingData() { server.stop() }

    /// Kills the server with SIGKILL (keeps the store).
    public func kill() { server.kill() }

    /// Starts the server again on the same port with the same store.
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
