import Foundation

/// A `nats-server` with JetStream run as a child process, its config, store and log in
/// one directory. Used by `meshctl up` (a persistent `.mesh/nats`) and by the test
/// harness (a temp directory).
///
/// The binary is `$MESH_NATS_SERVER`, else `nats-server` on `PATH`.
public final class LocalNatsServer: Sendable {
    /// Client port on 127.0.0.1.
    public let port: Int
    /// HTTP monitoring port on 127.0.0.1 (`/healthz`, `/varz`, `/jsz`).
    public let monitorPort: Int
    /// Directory with `nats.conf`, `js/` (the JetStream store) and `nats.log`.
    public let directory: String
    private let child: ChildProcess

    /// `nats://127.0.0.1:<port>`.
    public var url: String { "nats://127.0.0.1:\(port)" }
    /// The server's pid.
    public var pid: Int32 { child.pid }

    /// The `nats-server` binary, or nil when none is installed.
    public static var binaryPath: String? {
        if let explicit = ProcessInfo.processInfo.environment["MESH_NATS_SERVER"], !explicit.isEmpty { return LocalHost.which(explicit) }
        return LocalHost.which("nats-server")
    }

    /// Seconds between nats-server's pings to each client.
    public static let pingInterval = 2
    /// Unanswered pings after which nats-server closes a client's connection.
    public static let pingMax = 2

    /// Writes the config and starts the server; returns once it accepts connections.
    /// - Parameters:
    ///   - directory: created if missing; keeps the JetStream store across restarts.
    ///   - syncAlways: `sync_interval: always` — fsync every JetStream write (durable
    ///     across power loss, slower). Off by default for a local mesh.
    /// - Throws: ``LocalServerError`` when the binary is missing, a port is taken or the
    ///   server does not come up in 30 s.
    public init(directory: String, port: Int, monitorPort: Int, jetstream: Bool = true, syncAlways: Bool = false) async throws {
        guard let binary = Self.binaryPath else {
            throw LocalServerError("nats-server not found (install it with Deploy/dev/setup.sh or set MESH_NATS_SERVER)")
        }
        for taken in [port, monitorPort] where LocalHost.isListening(port: taken) {
            throw LocalServerError("port \(taken) on 127.0.0.1 is already in use")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var config = """
            listen: 127.0.0.1:\(port)
            http: 127.0.0.1:\(monitorPort)
            max_payload: 8MB
            # A client that stops answering pings (a frozen or paused process keeps its TCP
            # connection) is disconnected after about three intervals, so its subscriptions
            # stop taking a share of their queue groups' requests (nats-server's default:
            # minutes). The same settings are in Deploy/nats/nats.conf.
            ping_interval: "\(Self.pingInterval)s"
            ping_max: \(Self.pingMax)

            """
        if jetstream {
            config += """
                jetstream {
                  store_dir: "\(directory)/js"
                  max_memory_store: 256MB
                  max_file_store: 4GB
                  \(syncAlways ? "sync_interval: always" : "")
                }

                """
        }
        let configPath = "\(directory)/nats.conf"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        self.port = port
        self.monitorPort = monitorPort
        self.directory = directory
        self.child = try ChildProcess(executable: binary, arguments: ["-c", configPath], logPath: "\(directory)/nats.log")
        try await waitReady()
    }

    private func waitReady() async throws {
        let ready = await LocalHost.waitUntil(timeout: .seconds(30)) {
            !child.isRunning || (LocalHost.isListening(port: port) && LocalHost.isListening(port: monitorPort))
        }
        guard ready, child.isRunning else { throw LocalServerError("nats-server did not start: \(child.logTail())") }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s); the store stays.
    public func stop() { child.stop() }

    /// Kills the server with SIGKILL (the store stays).
    public func kill() { child.kill9() }

    /// Starts the server again on the same ports with the same store; waits until ready.
    public func restart() async throws {
        try child.restart()
        try await waitReady()
    }

    /// Whether the server process runs.
    public var isRunning: Bool { child.isRunning }

    /// The end of the server's log (for error messages).
    public func logTail() -> String { child.logTail() }
}
