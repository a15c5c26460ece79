import ArgumentParser
import LocalServers
import Foundation
import MeshClient
import MeshCore
import MeshProto
import MeshRuntime
import Nats

/// Options to reach a mesh over NATS, shared by the commands that talk to it directly.
struct MeshConnectionOptions: ParsableArguments {
    @Option(name: .customLong("nats-url"), help: "NATS URL; default: the local mesh in --state-dir, else MESH_NATS_URL, else nats://127.0.0.1:4222.")
    var natsURL: String?

    @Option(name: .customLong("state-dir"), help: "State directory of a local mesh (meshctl up).")
    var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

    @Option(name: .customLong("prefix"), help: "Subject prefix of the mesh (env MESH_PREFIX).")
    var prefix: String = MeshEnvironment.string("MESH_PREFIX") ?? Subjects.defaultPrefix

    var resolvedURL: String {
        natsURL ?? LocalMeshState.read(stateDirectory: stateDirectory)?.natsURL ?? MeshEnvironment.string("MESH_NATS_URL")
            ?? "nats://127.0.0.1:4222"
    }

    func validate() throws {
        guard Identifier.isValid(prefix) else { throw ValidationError("--prefix must match [a-z0-9][a-z0-9_-]{0,62}") }
    }

    /// Connects and reads the cluster's shard count.
    func connect() async throws -> (NatsConnection, Subjects, ShardMap) {
        try await Self.connect(resolvedURL, prefix: prefix)
    }

    /// Connects to the mesh at `url` with subject prefix `prefix` and reads its shard count.
    static func connect(_ url: String, prefix: String) async throws -> (NatsConnection, Subjects, ShardMap) {
        let subjects = try Subjects(prefix: prefix)
        let connection = try await CLIConnection.connect(url)
        do {
            let cluster = try connection.jetStream().keyValue(subjects.clusterBucket)
            guard let entry = try cluster.get(ClusterResources.shardCountKey), let count = Int(String(decoding: entry.value, as: UTF8.self)) else {
                throw CLIError("the mesh at \(url) has no shard count yet (is it running?)")
            }
            return (connection, subjects, try ShardMap(shardCount: count))
        } catch let error as NatsError where error.code == .notFound {
            connection.close()
            throw CLIError("no mesh with prefix '\(prefix)' at \(url) (no \(subjects.clusterBucket) bucket)")
        } catch {
            connection.close()
            throw error
        }
    }
}

/// `meshctl act ID ACTION [--data JSON]`: runs an action on an agent and prints its reply.
struct Act: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run an action on an agent and print the reply.")

    @Argument(help: "Agent id.")
    var agent: String

    @Argument(help: "Action name, e.g. get, add, say.")
    var action: String

    @Option(name: .customLong("data"), help: "Payload, usually JSON (default: empty).")
    var data: String = ""

    @Option(name: .customLong("timeout-ms"), help: "Give up after this many ms.")
    var timeoutMs: Int = 5_000

    @OptionGroup var connection: MeshConnectionOptions

    @OptionGroup var through: ThroughGatewayOptions

    func validate() throws {
        do { _ = try AgentID(agent) } catch { throw ValidationError(error.message) }
        guard !action.isEmpty, action.utf8.count <= ActionClient.maxActionNameBytes else {
            throw ValidationError("ACTION must be 1...\(ActionClient.maxActionNameBytes) bytes")
        }
        guard data.utf8.count <= 1 << 20 else { throw ValidationError("--data is limited to 1 MiB") }
        guard (1...600_000).contains(timeoutMs) else { throw ValidationError("--timeout-ms must be in 1...600000") }
    }

    func run() async throws {
        if let gateway = through.client(stateDirectory: connection.stateDirectory, timeoutMs: timeoutMs) {
            let path = "/api/v1/agents/\(GatewayHTTP.encode(agent))/actions/\(GatewayHTTP.encode(action))?timeout_ms=\(timeoutMs)"
            let reply = try gateway.raw("POST", path, body: Array(data.utf8), contentType: "application/json")
            say(reply.text)
            return
        }
        let (nats, subjects, shardMap) = try await connection.connect()
        defer { nats.close() }
        let client: ActionClient
        do { client = try await ActionClient.watchingShards(connection: nats, subjects: subjects, shardMap: shardMap) } catch {
            throw CLIError("unavailable: cannot read the mesh's shard table (\(error.code)); is the mesh running?")
        }
        defer { client.stop() }
        do {
            let reply = try await client.act(try AgentID(agent), action: action, payload: Array(data.utf8), timeout: .milliseconds(timeoutMs))
            say(String(decoding: reply, as: UTF8.self))
        } catch {
            throw CLIError("\(error.code): \(error.message)")
        }
    }
}
