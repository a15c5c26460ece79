import Foundation
import MeshCore
import MeshTesting
import Testing

/// `meshctl up` as a user runs it: the whole mesh as child processes, `meshctl status`
/// finds every service, and a signal stops everything with no process left behind.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct LocalMeshTests {
    struct UpState: Decodable {
        struct Process: Decodable {
            var name: String
            var pid: Int32
        }
        var pid: Int32
        var natsURL: String
        var processes: [Process]
    }

    struct ServiceStats: Decodable {
        var name: String
        var id: String
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func upStartsEverythingStatusSeesItAndASignalStopsAll(signal: Int32) async throws {
        let state = try TestEnvironment.makeTempDirectory(prefix: "up")
        chmod(state, 0o755)  // PostgreSQL may run as another user and must reach its directory.
        defer { try? FileManager.default.removeItem(atPath: state) }
        let meshctl = try MeshBinaries.path("meshctl")
        let up = try ChildProcess(
            executable: meshctl,
            arguments: [
                "up", "--state-dir", state, "--nats-port", String(try TestEnvironment.freePort()), "--nats-monitor-port",
                String(try TestEnvironment.freePort()), "--postgres-port", String(try TestEnvironment.freePort()), "--workers", "2",
                "--gateway-port", String(try TestEnvironment.freePort()),
            ],
            logPath: "\(state)/up.out")
        defer { up.stop(signal: SIGTERM, timeout: .seconds(30)) }

        let started = await TestEnvironment.waitUntil(timeout: .seconds(90)) {
            FileManager.default.fileExists(atPath: "\(state)/up.json") || !up.isRunning
        }
        #expect(started && up.isRunning, "meshctl up did not come up: \(up.logTail())")
        let upState = try JSONDecoder().decode(UpState.self, from: Data(contentsOf: URL(fileURLWithPath: "\(state)/up.json")))
        #expect(upState.pid == up.pid)
        #expect(upState.processes.count == 2 + 4 + 2)
        let dead = upState.processes.filter { !LocalHost.isRunning(pid: $0.pid) }
        #expect(dead.isEmpty, "exited: \(dead.map { "\($0.name): \(Self.tail("\(state)/logs", $0.name))" })")
        #expect(up.logTail().contains("mesh is up"))

        let status = try ChildProcess(
            executable: meshctl, arguments: ["status", "--state-dir", state, "-o", "json"], logPath: "\(state)/status.out",
            errorLogPath: "\(state)/status.err")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(30)) { !status.isRunning })
        #expect(await status.stop() == 0)
        let listed = try JSONDecoder().decode([ServiceStats].self, from: Data(contentsOf: URL(fileURLWithPath: "\(state)/status.out")))
        #expect(Set(listed.map(\.name)) == Set(ServiceName.allCases.map(\.rawValue)))
        #expect(listed.count == 6)

        // The gateway made a bootstrap admin key: printed once, kept 0600 for local meshctl,
        // which manages keys through the gateway with it.
        let keyFile = "\(state)/gateway-admin.key"
        let adminKey = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(adminKey.hasPrefix("mesh_") && up.logTail().contains(adminKey))
        #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int == 0o600)
        let create = try ChildProcess(
            executable: meshctl, arguments: ["keys", "create", "--role", "viewer", "--name", "ci", "--state-dir", state, "-o", "json"],
            logPath: "\(state)/keys.out", errorLogPath: "\(state)/keys.err")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(30)) { !create.isRunning })
        #expect(await create.stop() == 0, "\((try? String(contentsOfFile: "\(state)/keys.err", encoding: .utf8)) ?? "")")
        let createdKey = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(state)/keys.out"))) as? [String: Any]
        #expect((createdKey?["secret"] as? String)?.hasPrefix("mesh_") == true && createdKey?["role"] as? String == "viewer")
        let list = try ChildProcess(
            executable: meshctl, arguments: ["keys", "ls", "--state-dir", state, "-o", "json"], logPath: "\(state)/keys-ls.out",
            errorLogPath: "\(state)/keys-ls.err")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(30)) { !list.isRunning })
        #expect(await list.stop() == 0)
        let keys = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(state)/keys-ls.out"))) as? [[String: Any]]
        #expect(Set(keys?.compactMap { $0["name"] as? String } ?? []) == ["bootstrap", "ci"])

        // Stop: meshctl exits 0 and leaves no process of the mesh behind.
        #expect(await up.stop(signal: signal, timeout: .seconds(30)) == 0, "meshctl up did not stop cleanly: \(up.logTail())")
        for process in upState.processes {
            #expect(!LocalHost.isRunning(pid: process.pid), "\(process.name) (pid \(process.pid)) still runs after meshctl up stopped")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(state)/up.json"))
    }

    @Test func upAfterAKilledRunStopsItsLeftovers() async throws {
        let state = try TestEnvironment.makeTempDirectory(prefix: "leftover")
        chmod(state, 0o755)
        defer { try? FileManager.default.removeItem(atPath: state) }
        let meshctl = try MeshBinaries.path("meshctl")
        let arguments = [
            "up", "--state-dir", state, "--nats-port", String(try TestEnvironment.freePort()), "--nats-monitor-port",
            String(try TestEnvironment.freePort()), "--postgres-port", String(try TestEnvironment.freePort()), "--no-metrics-ports",
            "--gateway-port", String(try TestEnvironment.freePort()),
        ]
        let first = try ChildProcess(executable: meshctl, arguments: arguments, logPath: "\(state)/first.out")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(90)) { FileManager.default.fileExists(atPath: "\(state)/up.json") })
        let firstState = try JSONDecoder().decode(UpState.self, from: Data(contentsOf: URL(fileURLWithPath: "\(state)/up.json")))
        defer { Self.terminate(firstState) }
        first.kill9()  // no chance to stop its children
        #expect(firstState.processes.allSatisfy { LocalHost.isRunning(pid: $0.pid) }, "children should outlive a SIGKILLed meshctl")

        let second = try ChildProcess(executable: meshctl, arguments: arguments, logPath: "\(state)/second.out")
        defer { second.stop(signal: SIGTERM, timeout: .seconds(30)) }
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(90)) { second.logTail().contains("mesh is up") || !second.isRunning })
        #expect(second.isRunning, "second meshctl up failed: \(second.logTail())")
        #expect(second.logTail().contains("left by an earlier run"))
        for process in firstState.processes {
            #expect(!LocalHost.isRunning(pid: process.pid), "leftover \(process.name) (pid \(process.pid)) still runs")
        }
        #expect(await second.stop(signal: SIGTERM, timeout: .seconds(30)) == 0)
    }

    /// The end of the log of the first instance of `service` in `logs` (for failure messages).
    static func tail(_ logs: String, _ service: String) -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []
        let short = service.replacingOccurrences(of: "mesh-", with: "").replacingOccurrences(of: "agent-", with: "").replacingOccurrences(of: "metrics-", with: "")
        guard let file = files.sorted().first(where: { $0.hasPrefix(short) }),
            let data = FileManager.default.contents(atPath: "\(logs)/\(file)")
        else { return "(no log)" }
        return String(decoding: data.suffix(1_500), as: UTF8.self)
    }

    /// Stops whatever of a recorded mesh still runs (cleanup after a failed expectation).
    static func terminate(_ state: UpState) {
        for pid in [state.pid] + state.processes.map(\.pid) where LocalHost.isRunning(pid: pid) { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline && ([state.pid] + state.processes.map(\.pid)).contains(where: { LocalHost.isRunning(pid: $0) }) { usleep(50_000) }
        for pid in [state.pid] + state.processes.map(\.pid) where LocalHost.isRunning(pid: pid) { kill(pid, SIGKILL) }
    }

    @Test func downStopsADetachedMesh() async throws {
        let state = try TestEnvironment.makeTempDirectory(prefix: "down")
        chmod(state, 0o755)
        defer { try? FileManager.default.removeItem(atPath: state) }
        let meshctl = try MeshBinaries.path("meshctl")
        let detach = try ChildProcess(
            executable: meshctl,
            arguments: [
                "up", "--detach", "--state-dir", state, "--nats-port", String(try TestEnvironment.freePort()), "--nats-monitor-port",
                String(try TestEnvironment.freePort()), "--postgres-port", String(try TestEnvironment.freePort()),
                "--gateway-port", String(try TestEnvironment.freePort()),
            ],
            logPath: "\(state)/detach.out")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(120)) { !detach.isRunning })
        #expect(await detach.stop() == 0, "detached start failed: \(detach.logTail())")
        let upState = try JSONDecoder().decode(UpState.self, from: Data(contentsOf: URL(fileURLWithPath: "\(state)/up.json")))
        #expect(LocalHost.isRunning(pid: upState.pid))
        defer { Self.terminate(upState) }

        let down = try ChildProcess(executable: meshctl, arguments: ["down", "--state-dir", state], logPath: "\(state)/down.out")
        #expect(await TestEnvironment.waitUntil(timeout: .seconds(60)) { !down.isRunning })
        #expect(await down.stop() == 0)
        #expect(down.logTail().contains("mesh stopped"))
        for process in upState.processes + [.init(name: "meshctl", pid: upState.pid)] {
            #expect(!LocalHost.isRunning(pid: process.pid), "\(process.name) (pid \(process.pid)) still runs after meshctl down")
        }
    }
}
