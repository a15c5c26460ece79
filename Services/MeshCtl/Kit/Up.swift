import ArgumentParser
import Foundation
import LocalServers
import Logging
import MeshCore
import UnixSignals

/// `meshctl up`: the embedded local mesh.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole mesh on this machine: nats-server, PostgreSQL and all five services as child processes.",
        discussion: """
            State (JetStream store, PostgreSQL cluster, logs) lives in --state-dir and survives restarts. \
            Runs until Ctrl-C or SIGTERM, then stops every child; with --detach it runs in the background \
            until `meshctl down`.
            """)

    @Option(name: .customLong("state-dir"), help: "State directory (env MESH_STATE_DIR).")
    var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

    @Option(name: .customLong("nats-port"), help: "nats-server client port on 127.0.0.1.")
    var natsPort: Int = 4222

    @Option(name: .customLong("nats-monitor-port"), help: "nats-server monitoring port on 127.0.0.1.")
    var natsMonitorPort: Int = 8222

    @Option(name: .customLong("postgres-port"), help: "PostgreSQL port on 127.0.0.1 (not 5432, to stay clear of a system server).")
    var postgresPort: Int = 54320

    @Option(name: .customLong("gateway-port"), help: "Port of the gateway's HTTP API on 127.0.0.1.")
    var gatewayPort: Int = 8080

    @Option(name: .customLong("workers"), help: "Number of agent workers.")
    var workers: Int = 1

    @Option(name: .customLong("prefix"), help: "Subject prefix.")
    var prefix: String = Subjects.defaultPrefix

    @Option(name: .customLong("log-level"), help: "Log level of the services.")
    var logLevel: String = "info"

    @Flag(name: .customLong("no-metrics-ports"), help: "Do not give each service a /metrics port.")
    var noMetricsPorts = false

    @Flag(name: .customLong("detach"), help: "Start in the background and return once the mesh is up.")
    var detach = false

    @Option(name: .customLong("ready-timeout"), help: "Seconds to wait for every service to answer discovery.")
    var readyTimeout: Int = 60

    func validate() throws {
        for (name, port) in [
            ("--nats-port", natsPort), ("--nats-monitor-port", natsMonitorPort), ("--postgres-port", postgresPort), ("--gateway-port", gatewayPort),
        ] {
            guard (1...65_535).contains(port) else { throw ValidationError("\(name) must be in 1...65535") }
        }
        guard Set([natsPort, natsMonitorPort, postgresPort, gatewayPort]).count == 4 else { throw ValidationError("ports must differ") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be in 1...64") }
        guard Identifier.isValid(prefix) else { throw ValidationError("--prefix must match [a-z0-9][a-z0-9_-]{0,62}") }
        guard LogLevelParser.parse(logLevel) != nil else { throw ValidationError("--log-level must be trace|debug|info|notice|warning|error|critical") }
        guard (1...600).contains(readyTimeout) else { throw ValidationError("--ready-timeout must be in 1...600") }
    }

    func run() async throws {
        let state = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        if let existing = LocalMeshState.read(stateDirectory: state) {
            if existing.isAlive {
                throw CLIError("a mesh is already running from \(state) (pid \(existing.pid)); stop it with `meshctl down`")
            }
            let stopped = existing.stopLeftovers()
            if !stopped.isEmpty {
                FileHandle.standardError.write(Data("meshctl: stopped processes left by an earlier run that did not stop cleanly: \(stopped.joined(separator: ", "))\n".utf8))
            }
            try? FileManager.default.removeItem(atPath: LocalMeshState.path(stateDirectory: state))
        }
        if detach { return try startDetached(state: state) }

        let mesh = try LocalMesh(
            configuration: LocalMeshConfiguration(
                stateDirectory: state, natsPort: natsPort, natsMonitorPort: natsMonitorPort, postgresPort: postgresPort,
                gatewayPort: gatewayPort, workers: workers, prefix: prefix, logLevel: logLevel, metricsPorts: !noMetricsPorts, readyTimeout: .seconds(readyTimeout)),
            logger: Logger(label: "meshctl"))
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let keyFile = LocalMeshState.keyPath(stateDirectory: state)
        let hadKey = FileManager.default.fileExists(atPath: keyFile)
        let meshState: LocalMeshState
        do {
            meshState = try await mesh.start()
        } catch {
            mesh.stop()
            throw error
        }
        // The summary first, then the state file: `up.json` is the readiness marker that
        // `--detach`, `meshctl down` and scripts wait for, so everything is said by then.
        printSummary(meshState, state: state)
        if !hadKey, let key = try? String(contentsOfFile: keyFile, encoding: .utf8) {
            say("\nadmin API key (printed this once; kept in \(keyFile), mode 0600, for local meshctl):")
            say("  \(key.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        try meshState.write(stateDirectory: state)

        // Watch until a signal: report services that die (they are not restarted: a local
        // mesh that loses a process says so loudly instead of hiding it).
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await signal in signals {
                    FileHandle.standardError.write(Data("meshctl: \(signal) received, stopping\n".utf8))
                    return
                }
            }
            group.addTask {
                var reported: Set<String> = []
                while !Task.isCancelled {
                    for exited in mesh.exitedServices() where !reported.contains(exited.id) {
                        reported.insert(exited.id)
                        FileHandle.standardError.write(Data("meshctl: \(exited.name.rawValue) (\(exited.id)) exited; see \(exited.child.logPath)\n".utf8))
                    }
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
            await group.next()
            group.cancelAll()
        }
        mesh.stop()
        try? FileManager.default.removeItem(atPath: LocalMeshState.path(stateDirectory: state))
        say("mesh stopped")
    }

    private func printSummary(_ meshState: LocalMeshState, state: String) {
        var rows = [["PROCESS", "ID", "PID", "LISTENS", "LOG"]]
        for process in meshState.processes {
            let listens: String
            switch process.name {
            case "nats-server": listens = "\(meshState.natsURL) (monitor http://127.0.0.1:\(natsMonitorPort))"
            case "postgres": listens = "127.0.0.1:\(postgresPort), socket \(state)/postgres"
            case "mesh-gateway": listens = "\(meshState.gatewayURL ?? "-") (API)" + (process.metricsPort.map { ", http://127.0.0.1:\($0)/metrics" } ?? "")
            default: listens = process.metricsPort.map { "http://127.0.0.1:\($0)/metrics" } ?? "-"
            }
            rows.append([process.name, process.id, String(process.pid), listens, process.log])
        }
        say(Table.render(rows))
        say("\nmesh is up: NATS \(meshState.natsURL), Postgres \(meshState.postgresURL), gateway \(meshState.gatewayURL ?? "-")")
        say("`meshctl status` lists the services; Ctrl-C (or `meshctl down`) stops everything.")
    }

    /// Re-runs `meshctl up` without `--detach` in a new session with output to
    /// `<state>/logs/meshctl.log`, then waits until it reports the mesh up (or dies).
    private func startDetached(state: String) throws {
        try FileManager.default.createDirectory(atPath: "\(state)/logs", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: LocalMeshState.path(stateDirectory: state))
        var arguments = Array(CommandLine.arguments.dropFirst()).filter { $0 != "--detach" }
        arguments += ["--state-dir", state]
        let executable = try LocalMesh.executableDirectory() + "/meshctl"
        let setsid = LocalHost.which("setsid")
        let child = try ChildProcess(
            executable: setsid ?? executable, arguments: setsid == nil ? arguments : [executable] + arguments,
            logPath: "\(state)/logs/meshctl.log")
        let deadline = Date().addingTimeInterval(TimeInterval(readyTimeout + 30))
        while Date() < deadline {
            if let up = LocalMeshState.read(stateDirectory: state), up.isAlive {
                say("mesh is up in the background (pid \(up.pid)); NATS \(up.natsURL)")
                say("`meshctl status` lists the services; `meshctl down` stops the mesh. Log: \(state)/logs/meshctl.log")
                child.detach()
                return
            }
            if !child.isRunning { throw CLIError("the mesh did not start; see \(state)/logs/meshctl.log:\n\(child.logTail(maxBytes: 2_000))") }
            usleep(100_000)
        }
        throw CLIError("the mesh did not come up in time; see \(state)/logs/meshctl.log")
    }
}

/// `meshctl down`: stops a mesh started with `meshctl up --detach` (or in another terminal).
struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the local mesh running from --state-dir.")

    @Option(name: .customLong("state-dir"), help: "State directory (env MESH_STATE_DIR).")
    var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

    @Option(name: .customLong("timeout"), help: "Seconds to wait before killing.")
    var timeout: Int = 30

    func run() async throws {
        let state = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        guard let up = LocalMeshState.read(stateDirectory: state), up.isAlive else {
            say("no mesh is running from \(state)")
            return
        }
        kill(up.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(TimeInterval(timeout))
        while up.isAlive && Date() < deadline { usleep(50_000) }
        if up.isAlive {
            // The owner did not finish: kill it, then stop every child it recorded.
            kill(up.pid, SIGKILL)
            _ = up.stopLeftovers()
            say("mesh killed after \(timeout) s")
        } else {
            say("mesh stopped")
        }
        try? FileManager.default.removeItem(atPath: LocalMeshState.path(stateDirectory: state))
    }
}
