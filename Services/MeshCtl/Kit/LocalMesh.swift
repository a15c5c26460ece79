import Foundation
import LocalServers
import Logging
import MeshCore
import Nats
import NatsMicro
import Store
import UnixSignals

/// What a running local mesh writes to `<state-dir>/up.json`, for `meshctl down` and
/// `meshctl status` to find it.
struct LocalMeshState: Codable {
    struct Process: Codable {
        var name: String
        var id: String
        var pid: Int32
        var metricsPort: Int?
        var log: String
    }

    /// Pid of the `meshctl up` process that owns everything else.
    var pid: Int32
    var natsURL: String
    var postgresURL: String
    var processes: [Process]
    var startedAt: Date
    /// The gateway's HTTP API (`http://127.0.0.1:<port>`); nil in a state file of an older version.
    var gatewayURL: String?

    static func path(stateDirectory: String) -> String { "\(stateDirectory)/up.json" }

    /// The bootstrap admin API key's file (mode 0600), written by the gateway on first start.
    static func keyPath(stateDirectory: String) -> String { "\(stateDirectory)/gateway-admin.key" }

    static func read(stateDirectory: String) -> LocalMeshState? {
        guard let data = FileManager.default.contents(atPath: path(stateDirectory: stateDirectory)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(LocalMeshState.self, from: data)
    }

    func write(stateDirectory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(stateDirectory: stateDirectory)), options: .atomic)
    }

    /// Whether the owning `meshctl up` process still runs.
    var isAlive: Bool { LocalHost.isRunning(pid: pid) }

    /// Stops processes an earlier `meshctl up` left behind when it was killed without a
    /// chance to stop its children (SIGKILL, a crash). A recorded pid counts only while
    /// its command line still names the recorded program (pids are reused).
    /// - Returns: the names of the processes stopped.
    func stopLeftovers() -> [String] {
        let leftovers = processes.filter { process in
            guard let data = FileManager.default.contents(atPath: "/proc/\(process.pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).contains(process.name)
        }
        for process in leftovers { kill(process.pid, process.name == "postgres" ? SIGINT : SIGTERM) }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && leftovers.contains(where: { LocalHost.isRunning(pid: $0.pid) }) { usleep(50_000) }
        for process in leftovers where LocalHost.isRunning(pid: process.pid) { kill(process.pid, SIGKILL) }
        return leftovers.map { "\($0.name) (\($0.id), pid \($0.pid))" }
    }
}

/// Settings of a local mesh (`meshctl up`).
struct LocalMeshConfiguration {
    var stateDirectory: String
    var natsPort: Int
    var natsMonitorPort: Int
    var postgresPort: Int
    var gatewayPort: Int
    var workers: Int
    var prefix: String
    var logLevel: String
    var metricsPorts: Bool
    var readyTimeout: Duration
    /// Extra environment for every service (e.g. `MESH_GATEWAY_RATE_LIMIT=0` for benchmarks).
    var extraEnvironment: [String: String] = [:]
}

/// A whole mesh on this machine as child processes: nats-server, PostgreSQL and the five
/// services (with `workers` agent workers), each logging to `<state-dir>/logs/`.
/// `@unchecked Sendable`: mutated only by `start` and `stop`, which the owner calls while no
/// other task reads it; the watch loop only reads between the two.
final class LocalMesh: @unchecked Sendable {
    let configuration: LocalMeshConfiguration
    let binDirectory: String
    private var nats: LocalNatsServer?
    private var postgres: LocalPostgres?
    private var services: [(name: ServiceName, id: String, child: ChildProcess, metricsPort: Int?)] = []
    private let logger: Logger

    init(configuration: LocalMeshConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        binDirectory = try Self.executableDirectory()
        for name in ServiceName.allCases where !FileManager.default.isExecutableFile(atPath: "\(binDirectory)/\(name.rawValue)") {
            throw CLIError("\(name.rawValue) not found next to meshctl in \(binDirectory); build the package first (swift build)")
        }
    }

    /// The directory of the running `meshctl` binary, where the service binaries are built.
    static func executableDirectory() throws -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path
    }

    var natsURL: String { "nats://127.0.0.1:\(configuration.natsPort)" }

    var gatewayURL: String { "http://127.0.0.1:\(configuration.gatewayPort)" }

    var postgresURL: String { "host=\(configuration.stateDirectory)/postgres port=\(configuration.postgresPort) dbname=mesh user=postgres" }

    /// Starts everything and waits until every service answers `$SRV.PING`.
    func start() async throws -> LocalMeshState {
        let state = configuration.stateDirectory
        let logs = "\(state)/logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)

        progress("starting nats-server on 127.0.0.1:\(configuration.natsPort)")
        nats = try await LocalNatsServer(
            directory: "\(state)/nats", port: configuration.natsPort, monitorPort: configuration.natsMonitorPort)
        progress("starting PostgreSQL on 127.0.0.1:\(configuration.postgresPort)")
        let postgres = try await LocalPostgres(directory: "\(state)/postgres", port: configuration.postgresPort)
        self.postgres = postgres
        try await createDatabase(postgres: postgres, name: "mesh")

        var plan: [(ServiceName, String)] = [
            (.registry, "registry-1"), (.supervisor, "supervisor-1"), (.gateway, "gateway-1"), (.metricsCollector, "collector-1"),
        ]
        for index in 1...configuration.workers { plan.append((.agentWorker, "worker-\(index)")) }
        for (name, id) in plan {
            let metricsPort = configuration.metricsPorts ? try LocalHost.freePort() : nil
            var environment = [
                "MESH_NATS_URL": natsURL, "MESH_POSTGRES_URL": postgresURL, "MESH_PREFIX": configuration.prefix,
                "MESH_INSTANCE_ID": id, "MESH_LOG_FORMAT": "json", "MESH_LOG_LEVEL": configuration.logLevel,
            ]
            environment["MESH_METRICS_PORT"] = metricsPort.map(String.init) ?? "0"
            environment.merge(configuration.extraEnvironment) { _, extra in extra }
            if name == .gateway {
                environment["MESH_GATEWAY_HOST"] = "127.0.0.1"
                environment["MESH_GATEWAY_PORT"] = String(configuration.gatewayPort)
                environment["MESH_GATEWAY_BOOTSTRAP_KEY_FILE"] = LocalMeshState.keyPath(stateDirectory: state)
            }
            let child = try ChildProcess(
                executable: "\(binDirectory)/\(name.rawValue)", arguments: [], logPath: "\(logs)/\(id).log", environment: environment)
            services.append((name, id, child, metricsPort))
        }
        progress("waiting for \(services.count) services to answer discovery")
        try await waitUntilDiscovered()
        return LocalMeshState(
            pid: getpid(), natsURL: natsURL, postgresURL: postgresURL,
            processes: [
                .init(name: "nats-server", id: "nats", pid: nats?.pid ?? 0, metricsPort: configuration.natsMonitorPort, log: "\(state)/nats/nats.log"),
                .init(name: "postgres", id: "postgres", pid: postgres.pid, metricsPort: nil, log: "\(state)/postgres/postgres.log"),
            ] + services.map { .init(name: $0.name.rawValue, id: $0.id, pid: $0.child.pid, metricsPort: $0.metricsPort, log: $0.child.logPath) },
            startedAt: Date(), gatewayURL: gatewayURL)
    }

    private func createDatabase(postgres: LocalPostgres, name: String) async throws {
        let admin = Store(configuration: StoreConfiguration(connectionString: postgres.connectionString(database: "postgres")), logger: logger)
        defer { admin.close() }
        let existing = try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [.text(name)])
        if existing.isEmpty {
            _ = try await admin.execute("CREATE DATABASE \(try SQLIdentifier.quoted(name))")
        }
    }

    private func waitUntilDiscovered() async throws {
        let connection = try await CLIConnection.connect(natsURL)
        defer { connection.close() }
        let expected = Set(services.map(\.id))
        var seen: Set<String> = []
        let deadline = ContinuousClock.now + configuration.readyTimeout
        while ContinuousClock.now < deadline {
            if let dead = services.first(where: { !$0.child.isRunning }) {
                throw CLIError("\(dead.name.rawValue) (\(dead.id)) exited during start; its log:\n\(dead.child.logTail(maxBytes: 2_000))")
            }
            let replies = (try? await MicroDiscovery.ping(connection, window: .milliseconds(250))) ?? []
            seen = Set(replies.map(\.id)).intersection(expected)
            if seen == expected, LocalHost.isListening(port: configuration.gatewayPort) { return }
        }
        throw CLIError("not every service answered discovery within \(configuration.readyTimeout): missing \(expected.subtracting(seen).sorted().joined(separator: ", "))")
    }

    /// Services that exited on their own, for the watch loop.
    func exitedServices() -> [(name: ServiceName, id: String, child: ChildProcess)] {
        services.filter { !$0.child.isRunning }.map { ($0.name, $0.id, $0.child) }
    }

    /// Stops the services (SIGTERM, in parallel), then PostgreSQL, then nats-server.
    func stop() {
        for service in services where service.child.isRunning { kill(service.child.pid, SIGTERM) }
        for service in services { service.child.stop(timeout: .seconds(5)) }
        services.removeAll()
        postgres?.stop()
        postgres = nil
        nats?.stop()
        nats = nil
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("meshctl: \(line)\n".utf8))
    }
}
