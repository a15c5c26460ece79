import AgentSDK
import Foundation
import MeshCore
import Synchronization
import Testing

/// An in-process dispatcher: each target is a closure; honours deadlines and cancellation.
struct TestDispatcher: ActionDispatcher {
    typealias Target = @Sendable (String, [UInt8]) async throws(MeshError) -> [UInt8]

    var targets: [String: Target]
    var labels: [String: [String: String]] = [:]
    let sent = Log()

    final class Log: Sendable {
        let entries = Mutex<[String]>([])
        func withLock<T>(_ body: (inout [String]) -> T) -> T { entries.withLock { body(&$0) } }
    }

    init(targets: [String: Target], labels: [String: [String: String]] = [:]) {
        self.targets = targets
        self.labels = labels
    }

    func send(_ action: String, payload: [UInt8], to agent: AgentID, deadline: ContinuousClock.Instant) async throws(MeshError) -> [UInt8] {
        sent.withLock { $0.append("\(agent):\(action)") }
        guard let target = targets[agent.rawValue] else { throw MeshError(.notFound, "agent \(agent) does not exist") }
        let result: Result<[UInt8], MeshError> = await withTaskGroup(of: Result<[UInt8], MeshError>?.self) { group in
            group.addTask {
                do throws(MeshError) { return .success(try await target(action, payload)) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return Task.isCancelled ? nil : .failure(MeshError(.timeout, "no reply from \(agent) in time"))
            }
            var first: Result<[UInt8], MeshError>? = nil
            while first == nil, let next = await group.next() { first = next }
            group.cancelAll()
            return first ?? .failure(MeshError(.timeout, "cancelled"))
        }
        return try result.get()
    }

    func agents(matching selector: LabelSelector, limit: Int, deadline: ContinuousClock.Instant) async throws(MeshError) -> [AgentID] {
        labels.filter { selector.matches($0.value) }.keys.sorted().prefix(limit).map { agent($0) }
    }
}

func answering(_ reply: String, after delay: Duration = .zero) -> TestDispatcher.Target {
    { _, _ throws(MeshError) in
        if delay > .zero { do { try await Task.sleep(for: delay) } catch { throw MeshError(.timeout, "cancelled") } }
        return bytes(reply)
    }
}

let failing: TestDispatcher.Target = { _, _ throws(MeshError) in throw MeshError(.internalError, "expert crashed") }

@Suite("fanout kind")
struct FanoutTests {
    func fanout(_ config: String, _ dispatcher: TestDispatcher, payload: String = #"{"q": "?"}"#, deadline: Duration = .seconds(5)) async throws
        -> [String: Any]
    {
        var kind = try behavior("fanout", config, id: "boss")
        return try object(try await kind.run("ask", payload, deadline: deadline, dispatcher: dispatcher))
    }

    func statuses(_ reply: [String: Any]) -> [String: String] {
        var result: [String: String] = [:]
        for entry in reply["results"] as? [[String: Any]] ?? [] { result[entry["agent"] as! String] = entry["status"] as? String }
        return result
    }

    @Test func allCollectsEveryReplyAndError() async throws {
        let dispatcher = TestDispatcher(targets: ["a": answering(#"{"v": 1}"#), "b": answering("plain text"), "c": failing])
        let reply = try await fanout(#"{"targets": ["a", "b", "c"], "mode": "all"}"#, dispatcher)
        #expect(reply["ok"] as? Bool == false)
        #expect(reply["succeeded"] as? Int == 2 && reply["failed"] as? Int == 1 && reply["targets"] as? Int == 3)
        #expect(statuses(reply) == ["a": "ok", "b": "ok", "c": "error"])
        let results = reply["results"] as! [[String: Any]]
        #expect((results[0]["reply"] as? [String: Any])?["v"] as? Int == 1)
        #expect(results[1]["replyText"] as? String == "plain text")
        #expect((results[2]["error"] as? [String: Any])?["code"] as? String == "internal")
        #expect(reply["result"] == nil)
        #expect(dispatcher.sent.withLock { $0.sorted() } == ["a:ask", "b:ask", "c:ask"])
    }

    @Test func allSucceeds() async throws {
        let dispatcher = TestDispatcher(targets: ["a": answering("1"), "b": answering("2")])
        let reply = try await fanout(#"{"targets": ["a", "b"]}"#, dispatcher)
        #expect(reply["ok"] as? Bool == true && reply["mode"] as? String == "all")
    }

    @Test func slowTargetTimesOutWithinTheFanoutDeadline() async throws {
        let dispatcher = TestDispatcher(targets: ["fast": answering("1"), "slow": answering("2", after: .seconds(30))])
        let started = ContinuousClock.now
        let reply = try await fanout(#"{"targets": ["fast", "slow"], "timeoutMs": 1000}"#, dispatcher)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(reply["ok"] as? Bool == false)
        #expect(statuses(reply) == ["fast": "ok", "slow": "error"], "\(reply)")
        let slow = (reply["results"] as! [[String: Any]])[1]
        #expect((slow["error"] as? [String: Any])?["code"] as? String == "timeout")
    }

    @Test func fanoutAnswersBeforeTheActionDeadline() async throws {
        // The fanout's own deadline ends before the action's, so a slow target makes the
        // fanout answer (ok: false), not overrun and fail the fanout agent.
        let hooks = Hooks()
        let dispatcher = TestDispatcher(targets: ["slow": answering("2", after: .seconds(30)), "fast": answering("1")])
        let runtime = makeRuntime(hooks: hooks, dispatcher: dispatcher)
        let cell = try runtime.makeCell(
            id: agent("impatient"), kind: "fanout", config: bytes(#"{"targets": ["slow", "fast"]}"#), actionTimeout: .milliseconds(400))
        let reply = try object(try await cell.call("ask", payload: bytes("{}")))
        #expect(reply["failed"] as? Int == 1 && reply["succeeded"] as? Int == 1)
        #expect(hooks.failureCount == 0 && cell.phase == .running)
    }

    @Test func firstTakesTheFirstSuccessAndCancelsTheRest() async throws {
        let dispatcher = TestDispatcher(targets: [
            "slow": answering(#""slow""#, after: .seconds(30)), "broken": failing, "quick": answering(#""quick""#, after: .milliseconds(20)),
        ])
        let started = ContinuousClock.now
        let reply = try await fanout(#"{"targets": ["slow", "broken", "quick"], "mode": "first"}"#, dispatcher)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(reply["ok"] as? Bool == true)
        #expect(reply["result"] as? String == "quick")
        #expect(statuses(reply) == ["slow": "cancelled", "broken": "error", "quick": "ok"])
    }

    @Test func firstWithNoSuccessIsNotOK() async throws {
        let dispatcher = TestDispatcher(targets: ["x": failing, "y": failing])
        let reply = try await fanout(#"{"targets": ["x", "y"], "mode": "first"}"#, dispatcher)
        #expect(reply["ok"] as? Bool == false && reply["failed"] as? Int == 2)
    }

    @Test func majorityVotesOnCanonicalJSON() async throws {
        let dispatcher = TestDispatcher(targets: [
            "e1": answering(#"{"answer": 42, "why": "math"}"#), "e2": answering(#"{"why":"math","answer":42}"#),
            "e3": answering(#"{"answer": 41}"#), "e4": answering(#"{"answer": 42, "why": "math"}"#, after: .milliseconds(50)),
            "e5": failing,
        ])
        let reply = try await fanout(#"{"targets": ["e1", "e2", "e3", "e4", "e5"], "mode": "majority"}"#, dispatcher)
        // 3 of 5 needed: e1 and e2 agree (keys in another order), e3 differs, e5 fails — the vote waits for e4.
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        #expect((reply["result"] as? [String: Any])?["answer"] as? Int == 42)
    }

    @Test func majorityStopsEarlyWhenReached() async throws {
        let dispatcher = TestDispatcher(targets: ["a": answering("1"), "b": answering("1"), "c": answering("2", after: .seconds(30))])
        let started = ContinuousClock.now
        let reply = try await fanout(#"{"targets": ["a", "b", "c"], "mode": "majority"}"#, dispatcher)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(reply["ok"] as? Bool == true && reply["result"] as? Int == 1)
        #expect(statuses(reply)["c"] == "cancelled")
    }

    @Test func majorityImpossibleEndsWithoutWaiting() async throws {
        let dispatcher = TestDispatcher(targets: [
            "a": answering("1"), "b": answering("2"), "c": failing, "d": answering("1", after: .seconds(30)),
        ])
        let started = ContinuousClock.now
        let reply = try await fanout(#"{"targets": ["a", "b", "c", "d"], "mode": "majority"}"#, dispatcher)
        // Needs 3 of 4: after a=1, b=2, c failed, at most 2 can agree.
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(reply["ok"] as? Bool == false && reply["result"] == nil)
    }

    @Test func selectorResolvesTargetsAndSkipsItself() async throws {
        let dispatcher = TestDispatcher(
            targets: ["x1": answering("1"), "x2": answering("1"), "boss": answering("self!")],
            labels: ["x1": ["role": "expert"], "x2": ["role": "expert"], "boss": ["role": "expert"], "y": ["role": "other"]])
        let reply = try await fanout(#"{"selector": {"role": "expert"}, "action": "consult"}"#, dispatcher)
        #expect(reply["targets"] as? Int == 2 && reply["ok"] as? Bool == true)
        #expect(dispatcher.sent.withLock { $0.sorted() } == ["x1:consult", "x2:consult"])
        let text = try await fanout(#"{"selector": "role in (expert,other), !missing"}"#, dispatcher)
        #expect(text["targets"] as? Int == 3)  // x1, x2 and y (which does not exist: an error entry)
    }

    @Test func emptySelectorMatchIsUnavailable() async throws {
        let dispatcher = TestDispatcher(targets: [:], labels: ["y": ["role": "other"]])
        var kind = try behavior("fanout", #"{"selector": {"role": "expert"}}"#)
        await expectMeshError(.unavailable) { _ = try await kind.run("ask", dispatcher: dispatcher) }
    }

    @Test func configIsValidated() async {
        await expectMeshError(.invalidArgument) { _ = try behavior("fanout", "{}") }
        await expectMeshError(.invalidArgument) { _ = try behavior("fanout", #"{"targets": ["a"], "mode": "most"}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("fanout", #"{"targets": ["Not Valid"]}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("fanout", #"{"targets": ["a", "b"], "maxTargets": 1}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("fanout", #"{"targets": ["a"], "timeoutMs": 0}"#) }
        await expectMeshError(.invalidArgument) { _ = try behavior("fanout", #"{"selector": "role in (unclosed"}"#) }
    }

    @Test func fanoutAgentInACellUsesTheRuntimeDispatcher() async throws {
        let dispatcher = TestDispatcher(targets: ["a": answering("1"), "b": answering("1")])
        let runtime = makeRuntime(dispatcher: dispatcher)
        let cell = try runtime.makeCell(id: agent("circle"), kind: "fanout", config: bytes(#"{"targets": ["a", "b"], "mode": "majority"}"#))
        let reply = try object(try await cell.call("ask", payload: bytes("{}")))
        #expect(reply["ok"] as? Bool == true)
    }
}
