import Foundation
import MeshCore
import MeshProto
import Nats
import Synchronization

/// The worker nodes as the gateway hears them: the last heartbeat of each node on
/// `<prefix>.node.*.hb`, decoded on the subscription's thread (no task per message). A
/// node silent for ``aliveWindow`` is listed as not alive; one silent for ``forgetAfter``
/// is dropped. At most 10 000 nodes are kept.
final class NodeView: Sendable {
    struct Node: Sendable {
        var beat: NodeHeartbeat
        var lastSeen: Date
    }

    let aliveWindow: TimeInterval = 3
    let forgetAfter: TimeInterval = 300
    /// The table, shared with the subscription's callback.
    final class Table: Sendable {
        let nodes = Mutex<[String: Node]>([:])
    }

    private let table: Table
    private let subscription: NatsHandlerSubscription

    init(nats: NatsConnection, subjects: Subjects) throws {
        let table = Table()
        let maxNodes = 10_000
            self.table = table
        subscription = try nats.subscribe(subjects.heartbeatWildcard, maxPendingMessages: 10_000, maxPendingBytes: 16 << 20) { message in
            guard let beat = try? NodeHeartbeat(serializedBytes: message.payload), Identifier.isValid(beat.nodeId) else { return }
            table.nodes.withLock { nodes in
                guard nodes[beat.nodeId] != nil || nodes.count < maxNodes else { return }
                nodes[beat.nodeId] = Node(beat: beat, lastSeen: Date())
            }
        }
    }

    /// Every node heard recently, sorted by id, as JSON objects.
    func list() -> [[String: Any]] {
        let now = Date()
        let snapshot = table.nodes.withLock { nodes -> [Node] in
            nodes = nodes.filter { now.timeIntervalSince($0.value.lastSeen) < forgetAfter }
            return nodes.values.sorted { $0.beat.nodeId < $1.beat.nodeId }
        }
        return snapshot.map { node in
            [
                "node": node.beat.nodeId, "alive": now.timeIntervalSince(node.lastSeen) < aliveWindow,
                "shards": node.beat.ownedShards.count, "agents": Int(node.beat.agentCount), "capacity": Int(node.beat.capacity),
                "load": node.beat.load, "draining": node.beat.draining, "version": node.beat.buildVersion,
                "last_seen": rfc3339(node.lastSeen),
            ]
        }
    }

    func stop() { try? subscription.unsubscribe() }
}

/// RFC 3339 with milliseconds, as every timestamp of the API is written.
func rfc3339(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}
