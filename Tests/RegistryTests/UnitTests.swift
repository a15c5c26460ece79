import Foundation
import MeshClient
import MeshCore
import MeshProto
import Nats
import Testing

/// Validation, the JSON spec shape and the directory index, without I/O.
@Suite struct RegistryUnitTests {
    @Test func specRules() throws {
        let rules = AgentSpecRules(extraKinds: ["greeter"])
        #expect(try rules.validate(spec("ok-1", kind: "greeter", labels: ["team": "a"], config: #"{"a":1}"#)).rawValue == "ok-1")
        func failure(_ spec: AgentSpec) -> String? {
            do { try rules.validate(spec) } catch { return error.code.rawValue }
            return nil
        }
        #expect(failure(spec("Bad")) == "invalid_id")
        #expect(failure(spec("a", kind: "nope")) == "invalid_argument")
        #expect(failure(spec("a", config: "[]")) == "invalid_argument")
        #expect(failure(spec("a", config: #"{"x":""# + String(repeating: "y", count: 65_536) + #""}"#)) == "too_large")
        var s = spec("a")
        s.group = "Bad Group"
        #expect(failure(s) == "invalid_argument")
        s = spec("a")
        s.periodSeconds = 86_401
        #expect(failure(s) == "invalid_argument")
        s = spec("a")
        s.maxRestarts = 1_000
        s.mailboxCapacity = UInt32(AgentLimits.maxMailboxCapacity)
        s.actionTimeoutMs = 600_000
        #expect(failure(s) == nil)
        s.mailboxCapacity += 1
        #expect(failure(s) == "invalid_argument")
    }

    @Test func jsonSpecDocument() throws {
        let text = #"{"id":"c-1","kind":"counter","config":{"initial":5},"labels":{"team":"x","n":3},"restart":"temporary","group":"g","group_strategy":"rest_for_one","max_restarts":4,"period_seconds":9,"mailbox_capacity":10,"action_timeout_ms":250}"#
        let spec = try AgentSpecDocument.spec(json: Array(text.utf8))
        #expect(spec.id == "c-1" && spec.kind == "counter" && spec.labels == ["team": "x", "n": "3"])
        #expect(spec.restartType == .temporary && spec.groupStrategy == .restForOne && spec.group == "g")
        #expect(spec.maxRestarts == 4 && spec.periodSeconds == 9 && spec.mailboxCapacity == 10 && spec.actionTimeoutMs == 250)
        #expect(String(decoding: spec.config, as: UTF8.self) == #"{"initial":5}"#)
        let object = AgentSpecDocument.object(spec: spec)
        let again = try AgentSpecDocument.spec(object: object)
        #expect(again == spec)
        for bad in [#"{"kind":"echo"}"#, #"{"id":"a"}"#, #"{"id":"a","kind":"echo","x":1}"#, #"{"id":"a","kind":"echo","restart":"never"}"#,
                    #"{"id":"a","kind":"echo","max_restarts":-1}"#, #"{"id":"a","kind":"echo","max_restarts":1.5}"#, #"[1]"#, "nope",
                    #"{"id":"a","kind":"echo","config":[1]}"#, #"{"id":3,"kind":"echo"}"#] {
            #expect(throws: MeshError.self, "\(bad)") { try AgentSpecDocument.spec(json: Array(bad.utf8)) }
        }
    }

    @Test func indexMergesOrdersAndPages() throws {
        var index = AgentIndex()
        @discardableResult
        func put(_ id: String, _ revision: UInt64, labels: [String: String] = [:]) -> AgentIndex.Change {
            index.applyAgent(key: id, value: AgentRecord(spec: spec(id, labels: labels)).serializedBytes(), revision: revision, deleted: false)
        }
        for (offset, id) in ["c", "a", "b", "d"].enumerated() { put(id, UInt64(offset + 1), labels: ["k": id == "d" ? "y" : "x"]) }
        #expect(index.list(limit: 10).records.map(\.spec.id) == ["a", "b", "c", "d"])
        let first = index.list(limit: 2)
        #expect(first.records.map(\.spec.id) == ["a", "b"] && first.nextCursor == "b")
        #expect(index.list(cursor: "b", limit: 2).records.map(\.spec.id) == ["c", "d"] && index.list(cursor: "b", limit: 2).nextCursor == nil)
        #expect(index.list(selector: try LabelSelector("k=y"), limit: 10).records.map(\.spec.id) == ["d"])
        // An older revision never replaces a newer one; a local write wins until the watch passes it.
        #expect(put("a", 1, labels: ["old": "1"]) == .stale)
        index.applyLocal(AgentRecord(spec: spec("e"), revision: 10))
        #expect(put("e", 9) == .stale)
        index.removeLocal(id: "e", revision: 10)
        #expect(put("e", 10) == .stale)
        #expect(index.record("e") == nil)
        #expect(put("e", 12) == .applied)
        // Status merge and the node index.
        #expect(index.record("a")?.status == .pending)
        let status = AgentRecord(status: .running, placement: Placement(nodeId: "n1", shard: 1), restartCount: 3)
        index.applyStatus(key: "a", value: status.serializedBytes(), revision: 1, deleted: false)
        #expect(index.record("a")?.status == .running && index.record("a")?.restartCount == 3 && index.record("a")?.revision == 2)
        #expect(index.list(node: "n1", limit: 10).records.map(\.spec.id) == ["a"])
        #expect(index.list(status: .running, limit: 10).records.map(\.spec.id) == ["a"])
        index.applyAgent(key: "b", value: [], revision: 20, deleted: true)
        #expect(index.count == 4 && index.record("b") == nil)
        #expect(index.applyAgent(key: "z", value: [0xFF, 0xFF], revision: 21, deleted: false) == .corrupt)
        // Pages stay under a byte budget.
        #expect(index.list(limit: 10, maxBytes: 1).records.count == 1)
    }
}
