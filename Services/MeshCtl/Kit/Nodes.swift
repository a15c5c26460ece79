import ArgumentParser
import Foundation
import MeshClient
import MeshCore
import MeshProto
import Nats

/// `meshctl nodes`: the worker nodes of a mesh, as the supervisor leader sees them.
struct Nodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Worker nodes: list, drain, undrain.", subcommands: [List.self, Drain.self, Undrain.self])

    /// `meshctl nodes ls`: the leader's node table.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List worker nodes with their shards and load.")

        @OptionGroup var connection: MeshConnectionOptions

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        func run() async throws {
            let (nats, subjects, _) = try await connection.connect()
            defer { nats.close() }
            let reply = try await SupervisorClient(connection: nats, subjects: subjects).nodes()
            switch output {
            case .json:
                printJSON(reply.nodes.map(Nodes.row))
            case .table:
                var rows = [["NODE", "ALIVE", "SHARDS", "AGENTS", "CAPACITY", "LOAD", "DRAINING", "VERSION"]]
                for node in reply.nodes {
                    rows.append([
                        node.nodeId, node.alive ? "yes" : "no", String(node.shards.count), String(node.agentCount), String(node.capacity),
                        String(format: "%.2f", node.load), node.drainRequested ? "yes (drained)" : node.draining ? "yes (stopping)" : "no",
                        node.buildVersion.isEmpty ? "-" : node.buildVersion,
                    ])
                }
                say(Table.render(rows))
                if reply.nodes.isEmpty { say("no worker node is known to the supervisor leader (\(reply.leaderId))") }
            }
        }
    }

    /// `meshctl nodes drain NODE`: moves the node's shards away before it is stopped.
    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a node's shards (and agents) to other nodes and keep new ones off it.",
            discussion: """
                The drain lasts until `meshctl nodes undrain NODE` or until the node restarts. With --wait \
                (the default) the command returns once the node owns no shard; stop the node then.
                """)

        @OptionGroup var connection: MeshConnectionOptions

        @Argument(help: "The node id (see `meshctl nodes ls`).")
        var node: String

        @Flag(name: .customLong("wait"), inversion: .prefixedNo, help: "Wait until the node owns no shard.")
        var wait = true

        @Option(name: .customLong("timeout"), help: "Seconds to wait with --wait.")
        var timeout: Int = 60

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        func validate() throws {
            guard Identifier.isValid(node) else { throw ValidationError("NODE must match [a-z0-9][a-z0-9_-]{0,62}") }
            guard (1...3_600).contains(timeout) else { throw ValidationError("--timeout must be in 1...3600") }
        }

        func run() async throws {
            let id = try NodeID(node)
            let (nats, subjects, _) = try await connection.connect()
            defer { nats.close() }
            let supervisor = SupervisorClient(connection: nats, subjects: subjects)
            let started = ContinuousClock.now
            var (info, candidates) = try await supervisor.drain(id)
            if output == .table {
                say("draining \(node): \(info.shards.count) shards to move, \(candidates) other nodes can take them")
            }
            if candidates == 0 && !info.shards.isEmpty {
                throw CLIError("no other node can take the shards of \(node); it stays drained but keeps them (undrain with `meshctl nodes undrain \(node)`)")
            }
            if wait {
                let deadline = started + .seconds(timeout)
                while !info.shards.isEmpty {
                    guard ContinuousClock.now < deadline else {
                        throw CLIError("\(node) still owns \(info.shards.count) shards after \(timeout) s; it stays drained")
                    }
                    try await Task.sleep(for: .milliseconds(100))
                    info = try await supervisor.node(id) ?? info
                }
            }
            switch output {
            case .json: printJSON(Nodes.row(info))
            case .table:
                say(wait ? "\(node) is drained (no shard left) after \(ContinuousClock.now - started); it can be stopped" : "\(node) is draining")
            }
        }
    }

    /// `meshctl nodes undrain NODE`: ends a drain.
    struct Undrain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a drain: the node may receive shards again.")

        @OptionGroup var connection: MeshConnectionOptions

        @Argument(help: "The node id.")
        var node: String

        func validate() throws {
            guard Identifier.isValid(node) else { throw ValidationError("NODE must match [a-z0-9][a-z0-9_-]{0,62}") }
        }

        func run() async throws {
            let (nats, subjects, _) = try await connection.connect()
            defer { nats.close() }
            _ = try await SupervisorClient(connection: nats, subjects: subjects).undrain(try NodeID(node))
            say("\(node) is no longer drained; it receives shards again after its hold-down")
        }
    }

    static func row(_ node: NodeInfo) -> [String: Any] {
        [
            "node": node.nodeId, "instance": node.instanceId, "alive": node.alive, "shards": node.shards.map(Int.init),
            "agents": Int(node.agentCount), "capacity": Int(node.capacity), "load": node.load, "draining": node.draining,
            "drained": node.drainRequested, "version": node.buildVersion, "lastHeartbeatUnixMs": node.lastHeartbeatUnixMs,
        ]
    }
}
