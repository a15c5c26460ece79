import Logging
import MeshCore
import MeshProto
import MeshRuntime
import MeshTesting
import Nats
import Testing

@Suite(.enabled(if: TestEnvironment.natsAvailable))
struct ClusterResourcesTests {
    let logger = Logger(label: "test.cluster")

    func connect(_ server: NatsServer) async throws -> NatsConnection {
        var options = NatsOptions()
        options.servers = [server.url]
        return try await NatsConnection.connect(options, logger: logger)
    }

    @Test func ensureIsIdempotentAndTheFirstShardCountWins() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await connect(server)
        defer { nats.close() }
        let js = try nats.jetStream()
        let subjects = try Subjects(prefix: "mesh")
        let first = try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 16, logger: logger)
        #expect(first.shardMap.shardCount == 16)
        let second = try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 64, logger: logger)
        #expect(second.shardMap.shardCount == 16)
        #expect(first.agents.bucket == "mesh_agents")
        #expect(try js.streamInfo("MESH_EVENTS").name == "MESH_EVENTS")
        #expect(try js.streamInfo("MESH_SPECS").name == "MESH_SPECS")

        // A corrupt stored count is an error, not a silent default.
        _ = try first.cluster.put("shard-count", Array("many".utf8))
        await #expect(throws: MeshError.self) {
            _ = try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 64, logger: logger)
        }
    }

    @Test func eventsAreStoredOnceWithTheirKindSubjectAndFields() async throws {
        let server = try await NatsServer.start()
        defer { server.stop() }
        let nats = try await connect(server)
        defer { nats.close() }
        let js = try nats.jetStream()
        let subjects = try Subjects(prefix: "mesh")
        _ = try await ClusterResources.ensure(js, subjects: subjects, replicas: 1, shardCount: 64, logger: logger)
        let events = EventPublisher(js: js, subjects: subjects, node: try NodeID("worker-1"), logger: logger)
        events.publish(.agentStarted, agent: try AgentID("alpha"), reason: "restored from checkpoint", attributes: ["shard": "3"])
        events.publish(.nodeLost, node: try NodeID("worker-2"), reason: "3 heartbeats missed")
        try js.publishAsyncComplete(timeout: .seconds(5))

        var consumer = ConsumerConfig(durableName: "reader")
        consumer.filterSubject = "mesh.evt.>"
        _ = try js.addOrUpdateConsumer(stream: "MESH_EVENTS", config: consumer)
        let pull = try js.pullSubscribe(stream: "MESH_EVENTS", consumer: "reader", filter: nil)
        // A fetch returns once messages arrived: the two may come in parts.
        var messages = try await pull.fetch(batch: 10, expires: .seconds(2))
        while messages.count < 2 {
            let more = try await pull.fetch(batch: 10, expires: .seconds(2))
            if more.isEmpty { break }
            messages += more
        }
        #expect(messages.map(\.subject) == ["mesh.evt.agent.started", "mesh.evt.node.lost"])
        let started = try Event(serializedBytes: messages[0].payload)
        #expect(started.agentId == "alpha" && started.nodeId == "worker-1" && started.reason == "restored from checkpoint")
        #expect(started.attributes == ["shard": "3"])
        #expect(TimeOrderedID.unixMilliseconds(of: started.id) != nil)
        #expect(messages[0].headers[MeshHeader.messageType] == "mesh.v1.Event")
        let lost = try Event(serializedBytes: messages[1].payload)
        #expect(lost.nodeId == "worker-2" && lost.agentId.isEmpty)
    }
}
