import ArgumentParser
import Foundation
import MeshCore
import MeshProto
import Nats

/// `meshctl nodes`: the worker nodes of a mesh.
struct Nodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Worker nodes.", subcommands: [List.self])

    /// `meshctl nodes ls`: the nodes heard heartbeating, with the shards KV says they own.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List worker nodes from their heartbeats and the shard table.")

        @OptionGroup var connection: MeshConnectionOptions

        @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
        var output: OutputFormat = .table

        @Option(name: .customLong("listen-ms"), help: "How long to listen for heartbeats, in ms.")
        var listenMs: Int = 700

        func validate() throws {
            guard (100...30_000).contains(listenMs) else { throw ValidationError("--listen-ms must be in 100...30000") }
        }

        func run() async throws {
            let (nats, subjects, shardMap) = try await connection.connect()
            defer { nats.close() }
            var beats: [String: NodeHeartbeat] = [:]
            let subscription = try nats.subscribe(subjects.heartbeatWildcard, queue: nil, bufferSize: 10_000)
            let deadline = ContinuousClock.now + .milliseconds(listenMs)
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    try? subscription.unsubscribe()
                }
                for await message in subscription {
                    if let beat = try? NodeHeartbeat(serializedBytes: message.payload), Identifier.isValid(beat.nodeId) {
                        beats[beat.nodeId] = beat
                    }
                }
            }
            var owned: [String: Int] = [:]
            let shards = try nats.jetStream().keyValue(subjects.shardsBucket)
            for shard in 0..<shardMap.shardCount {
                if let entry = try shards.get(String(shard)), let assignment = try? ShardAssignment(serializedBytes: entry.value),
                    !assignment.nodeId.isEmpty
                {
                    owned[assignment.nodeId, default: 0] += 1
                }
            }
            let nodes = Set(beats.keys).union(owned.keys).sorted()
            switch output {
            case .json:
                let rows: [[String: Any]] = nodes.map { node in
                    let beat = beats[node]
                    return [
                        "node": node, "alive": beat != nil, "shards": owned[node] ?? 0, "agents": Int(beat?.agentCount ?? 0),
                        "capacity": Int(beat?.capacity ?? 0), "load": beat?.load ?? 0, "draining": beat?.draining ?? false,
                        "version": beat?.buildVersion ?? "",
                    ]
                }
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                say(String(decoding: data, as: UTF8.self))
            case .table:
                var rows = [["NODE", "ALIVE", "SHARDS", "AGENTS", "CAPACITY", "LOAD", "DRAINING", "VERSION"]]
                for node in nodes {
                    let beat = beats[node]
                    rows.append([
                        node, beat == nil ? "no" : "yes", String(owned[node] ?? 0), beat.map { String($0.agentCount) } ?? "-",
                        beat.map { String($0.capacity) } ?? "-", beat.map { String(format: "%.2f", $0.load) } ?? "-",
                        beat.map { $0.draining ? "yes" : "no" } ?? "-", beat?.buildVersion ?? "-",
                    ])
                }
                say(Table.render(rows))
                if nodes.isEmpty { say("no worker node heard within \(listenMs) ms") }
            }
        }
    }
}
