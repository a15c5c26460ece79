import ArgumentParser
import Testing
@testable import MeshCore

@Suite struct IdentifierTests {
    @Test(arguments: ["a", "0", "pricing-expert-1", "a_b", "x" + String(repeating: "y", count: 62), "9lives"])
    func acceptsValidIDs(_ text: String) throws {
        #expect(Identifier.isValid(text))
        #expect(try AgentID(text).rawValue == text)
    }

    @Test(arguments: [
        "", "-a", "_a", "A", "agent.one", "agent one", "agent*", "agent>", "a\u{0}", "é", "x" + String(repeating: "y", count: 63),
        "agent\n", "ag/ent", "$SRV",
    ])
    func rejectsInvalidIDs(_ text: String) {
        #expect(!Identifier.isValid(text))
        #expect(throws: MeshError.self) { try AgentID(text) }
    }

    @Test func errorMessageSaysWhatIsAllowed() {
        do {
            _ = try AgentID("Bad.ID")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidID)
            #expect(error.message.contains("[a-z0-9][a-z0-9_-]{0,62}"))
            #expect(error.message.contains("Bad.ID"))
        }
    }

    @Test func longInvalidIDIsTruncatedInMessage() {
        let long = String(repeating: "Z", count: 10_000)
        do {
            _ = try AgentID(long)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.count < 400)
        }
    }

    @Test func randomNodeIDsAreValidAndDistinct() {
        let ids = Set((0..<100).map { _ in NodeID.random(prefix: "worker").rawValue })
        #expect(ids.count == 100)
        #expect(ids.allSatisfy { Identifier.isValid($0) && $0.hasPrefix("worker-") })
    }
}

@Suite struct ShardingTests {
    @Test func fnv1a64MatchesReferenceVectors() {
        #expect(ShardMap.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(ShardMap.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(ShardMap.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test func shardIsStableAndInRange() throws {
        let map = try ShardMap(shardCount: 64)
        let id = try AgentID("foobar")
        #expect(map.shard(of: id) == Int(UInt64(0x8594_4171_f739_67e8) % 64))
        for index in 0..<1000 {
            let shard = map.shard(of: try AgentID("agent-\(index)"))
            #expect((0..<64).contains(shard))
        }
    }

    @Test func shardsSpreadEvenly() throws {
        let map = try ShardMap(shardCount: 64)
        var counts = [Int](repeating: 0, count: 64)
        for index in 0..<64_000 { counts[map.shard(of: try AgentID("agent-\(index)"))] += 1 }
        // 1000 expected per shard; FNV-1a over sequential ids stays well inside ±20 %.
        #expect(counts.min()! > 800)
        #expect(counts.max()! < 1200)
    }

    @Test func rejectsBadShardCounts() {
        #expect(throws: MeshError.self) { try ShardMap(shardCount: 0) }
        #expect(throws: MeshError.self) { try ShardMap(shardCount: 65_537) }
    }
}

@Suite struct SubjectTests {
    @Test func subjectsAreSpelledAsDesigned() throws {
        let subjects = try Subjects(prefix: "mesh")
        let id = try AgentID("alpha")
        let node = try NodeID("worker-1")
        #expect(subjects.action(shard: 7, agent: id) == "mesh.agent.7.alpha.act")
        #expect(subjects.actionWildcard(shard: 7) == "mesh.agent.7.*.act")
        #expect(subjects.control(shard: 7, agent: id) == "mesh.agent.7.alpha.ctl")
        #expect(subjects.task(shard: 3, agent: id) == "mesh.task.3.alpha")
        #expect(subjects.taskWildcard(shard: 3) == "mesh.task.3.*")
        #expect(subjects.registry(shard: 5, verb: .get) == "mesh.reg.5.get")
        #expect(subjects.registry(verb: .list) == "mesh.reg.list")
        #expect(subjects.supervisor(verb: .drain) == "mesh.sup.drain")
        #expect(subjects.heartbeat(node: node) == "mesh.node.worker-1.hb")
        #expect(subjects.nodeProbe(node: node) == "mesh.node.worker-1.probe")
        #expect(subjects.event(domain: "agent", name: "started") == "mesh.evt.agent.started")
        #expect(subjects.metrics(service: .registry, instance: node) == "mesh.metrics.mesh-registry.worker-1")
        #expect(subjects.tasksStream == "MESH_TASKS")
        #expect(subjects.eventsStream == "MESH_EVENTS")
        #expect(subjects.agentsBucket == "mesh_agents")
        #expect(subjects.shardsBucket == "mesh_shards")
        #expect(subjects.stateBucket == "mesh_state")
    }

    @Test func prefixIsConfigurableAndValidated() throws {
        let subjects = try Subjects(prefix: "tenant-a")
        #expect(subjects.heartbeatWildcard == "tenant-a.node.*.hb")
        #expect(subjects.tasksStream == "TENANT-A_TASKS")
        #expect(throws: MeshError.self) { try Subjects(prefix: "a.b") }
        #expect(throws: MeshError.self) { try Subjects(prefix: ">") }
    }
}

@Suite struct ConfigurationTests {
    @Test func parsesFlags() throws {
        let options = try CommonOptions.parse([
            "--nats-url", "nats://a:4222, nats://b:4222", "--prefix", "blue", "--instance-id", "reg-1", "--metrics-port", "9100",
            "--log-level", "debug", "--log-format", "text", "--nats-coalescing-link", "off",
        ])
        #expect(options.natsServers == ["nats://a:4222", "nats://b:4222"])
        #expect(options.prefix == "blue")
        #expect(options.resolvedInstanceID(for: .registry).rawValue == "reg-1")
        #expect(options.metricsPort == 9100)
        #expect(options.logFormat == .text)
        #expect(!options.usesCoalescingLink)
    }

    @Test func randomInstanceIDWhenAbsent() throws {
        let options = try CommonOptions.parse([])
        #expect(options.resolvedInstanceID(for: .agentWorker).rawValue.hasPrefix("agent-worker-"))
        #expect(options.usesCoalescingLink)
    }

    @Test(arguments: [
        ["--prefix", "Bad.Prefix"], ["--instance-id", "UPPER"], ["--metrics-port", "70000"], ["--log-level", "loud"],
        ["--nats-url", "http://x"], ["--snapshot-interval-ms", "5"], ["--log-format", "xml"],
        ["--nats-coalescing-link", "yes"],
    ])
    func rejectsBadValues(_ arguments: [String]) {
        #expect(throws: (any Error).self) { try CommonOptions.parse(arguments) }
    }
}

@Suite struct LoggingTests {
    @Test func jsonStringEscaping() {
        var out = ""
        JSONLogHandler.appendJSONString("a\"b\\c\nd\u{1}é", to: &out)
        #expect(out == #""a\"b\\c\nd\u0001é""#)
    }
}

@Suite struct TimeOrderedIDTests {
    @Test func formatVersionAndOrder() {
        var previous = ""
        for step in 0..<1_000 {
            var generator = SystemRandomNumberGenerator()
            let id = TimeOrderedID.make(unixMilliseconds: 1_790_000_000_000 + UInt64(step), using: &generator)
            #expect(id.count == 36)
            #expect(id.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])
            #expect(id == id.lowercased())
            #expect(Array(id)[14] == "7")
            #expect("89ab".contains(Array(id)[19]))
            #expect(TimeOrderedID.unixMilliseconds(of: id) == 1_790_000_000_000 + UInt64(step))
            #expect(id > previous)
            previous = id
        }
        #expect(Set((0..<1_000).map { _ in TimeOrderedID.make() }).count == 1_000)
        #expect(TimeOrderedID.unixMilliseconds(of: "not-an-id") == nil)
    }
}
