import Foundation
import Logging
import MeshClient
import MeshCore
import MeshProto
import MeshTesting
import MeshRuntime
import Nats

/// A real nats-server and PostgreSQL, `mesh-registry` processes against them, and a
/// client connection.
final class RegistryHarness: @unchecked Sendable {
    // @unchecked: mutated only by the one test that owns it.
    let nats: NatsServer
    let postgres: PostgresServer
    let connection: NatsConnection
    let logs: String
    let subjects = try! Subjects()
    let shardMap = try! ShardMap()
    var registries: [String: ChildProcess] = [:]

    static func start() async throws -> RegistryHarness {
        let nats = try await NatsServer.start()
        let postgres = try await PostgresServer.start()
        var options = NatsOptions()
        options.servers = [nats.url]
        let connection = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        return RegistryHarness(nats: nats, postgres: postgres, connection: connection, logs: try TestEnvironment.makeTempDirectory(prefix: "reg-logs"))
    }

    private init(nats: NatsServer, postgres: PostgresServer, connection: NatsConnection, logs: String) {
        self.nats = nats
        self.postgres = postgres
        self.connection = connection
        self.logs = logs
    }

    var client: RegistryClient { RegistryClient(connection: connection, subjects: subjects, shardMap: shardMap, timeout: .seconds(5)) }

    /// Starts a registry instance and waits until it serves.
    @discardableResult
    func startRegistry(_ id: String = "registry-1", environment extra: [String: String] = [:]) async throws -> ChildProcess {
        var environment = [
            "MESH_NATS_URL": nats.url, "MESH_POSTGRES_URL": postgres.connectionString, "MESH_INSTANCE_ID": id,
            "MESH_LOG_LEVEL": "info", "MESH_SNAPSHOT_INTERVAL_MS": "1000",
        ]
        environment.merge(extra) { $1 }
        let child = try ChildProcess(
            executable: try MeshBinaries.path("mesh-registry"), arguments: [], logPath: "\(logs)/\(id).log", environment: environment)
        registries[id] = child
        let serving = try await TestEnvironment.waitUntil(timeout: .seconds(60)) {
            FileManager.default.contents(atPath: "\(logs)/\(id).log").map { String(decoding: $0, as: UTF8.self).contains("registry serving") } ?? false
        }
        guard serving else { throw HarnessError("\(id) did not start serving: \(child.logTail())") }
        return child
    }

    /// Sends raw bytes to a registry subject and decodes the reply as `Reply`.
    func raw<Reply: MeshMessage>(_ subject: String, _ payload: [UInt8], type: String? = nil, as: Reply.Type = Reply.self) async throws -> Reply {
        var headers = NatsHeaders()
        if let type { headers[MeshHeader.messageType] = type }
        let reply = try await connection.request(subject, payload: payload, headers: headers.isEmpty ? nil : headers, timeout: .seconds(5))
        #if DEBUG
        precondition(reply.headers[MeshHeader.messageType] == Reply.messageType.rawValue, "reply type \(String(describing: reply.headers[MeshHeader.messageType]))")
        #endif
        return try Reply(serializedBytes: reply.payload)
    }

    func logTail(_ id: String = "registry-1") -> String { registries[id]?.logTail(maxBytes: 3_000) ?? "" }

    func stop() {
        registries.values.forEach { _ = $0.stop(signal: SIGTERM, timeout: .seconds(5)) }
        connection.close()
        nats.stop()
        postgres.stop()
        try? FileManager.default.removeItem(atPath: logs)
    }
}

/// The error code a registry call failed with, or nil when it succeeded.
func code(_ body: () async throws -> Void) async -> String? {
    do { try await body() } catch { return (error as? MeshError)?.code.rawValue ?? "not a MeshError: \(error)" }
    return nil
}

func spec(_ id: String, kind: String = "echo", labels: [String: String] = [:], config: String = "") -> AgentSpec {
    AgentSpec(id: id, kind: kind, config: Array(config.utf8), labels: labels)
}

/// A nats-server with the mesh's streams and buckets, a connection and a task client: what
/// the tests of task submission and of the waiting-task recorder share.
final class TaskStreams: Sendable {
    let server: NatsServer
    let nats: NatsConnection
    let js: JetStream
    let subjects: Subjects
    let shardMap: ShardMap
    let tasks: TaskClient

    static func start() async throws -> TaskStreams {
        let server = try await NatsServer.start()
        var options = NatsOptions()
        options.servers = [server.url]
        let nats = try await NatsConnection.connect(options, logger: Logger(label: "test"))
        let js = try nats.jetStream()
        let subjects = try Subjects()
        let resources = try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 64, logger: Logger(label: "test"))
        return try TaskStreams(server: server, nats: nats, js: js, subjects: subjects, shardMap: resources.shardMap)
    }

    private init(server: NatsServer, nats: NatsConnection, js: JetStream, subjects: Subjects, shardMap: ShardMap) throws {
        self.server = server
        self.nats = nats
        self.js = js
        self.subjects = subjects
        self.shardMap = shardMap
        tasks = try TaskClient(connection: nats, subjects: subjects, shardMap: shardMap)
    }

    func stop() {
        nats.close()
        server.stop()
    }
}
