import AgentSDK
import Foundation
import MeshCore
import MeshProto
import Synchronization
import Testing

@Suite("Agent cell: mailbox, deadlines, failures, checkpoints")
struct CellTests {
    @Test func callRunsTheBehaviour() async throws {
        let runtime = makeRuntime()
        let cell = try runtime.makeCell(id: agent("echo-1"), kind: "echo")
        #expect(try await cell.call("say", payload: bytes("hello")) == bytes("hello"))
        #expect(cell.phase == .running)
        #expect(cell.mailboxCapacity == 256)
        #expect(cell.actionTimeout == .seconds(30))
    }

    @Test func cellFromSpecUsesItsLimitsAndDefaults() async throws {
        let runtime = makeRuntime()
        let spec = AgentSpec(id: "counter-7", kind: "counter", config: bytes(#"{"initial": 7}"#))
        var limited = spec
        limited.mailboxCapacity = 3
        limited.actionTimeoutMs = 1500
        let cell = try runtime.makeCell(spec: limited)
        #expect(cell.mailboxCapacity == 3 && cell.actionTimeout == .milliseconds(1500))
        #expect(text(try await cell.call("get")) == #"{"value":7}"#)
        let defaults = try runtime.makeCell(spec: spec)
        #expect(defaults.mailboxCapacity == 256 && defaults.actionTimeout == .seconds(30))
        await expectMeshError(.invalidID) { _ = try runtime.makeCell(spec: AgentSpec(id: "Bad ID", kind: "echo")) }
        await expectMeshError(.invalidArgument) { _ = try runtime.makeCell(spec: AgentSpec(id: "x", kind: "unknown")) }
        var huge = spec
        huge.mailboxCapacity = 1_000_000
        await expectMeshError(.invalidArgument) { _ = try runtime.makeCell(spec: huge) }
    }

    /// Per-sender order with a task per busy mailbox (`probe`) and answered inline (`inline-probe`).
    @Test(arguments: ["probe", "inline-probe"]) func perSenderOrderUnderManyConcurrentSenders(kind: String) async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let cell = try runtime.makeCell(id: agent("ordered-\(kind)"), kind: kind, mailboxCapacity: 10_000)
        let senders = 8
        let perSender = 300
        let replies = Replies()
        await withTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                group.addTask {
                    for sequence in 0..<perSender {
                        try! cell.send("record", payload: bytes("\(sender):\(sequence)"), reply: replies.reply(sender * perSender + sequence))
                    }
                }
            }
        }
        #expect(await eventually { replies.count == senders * perSender })
        let log = probe.log
        #expect(log.count == senders * perSender)
        var last = [Int](repeating: -1, count: senders)
        for entry in log {
            let parts = entry.split(separator: ":").map { Int($0)! }
            #expect(parts[1] == last[parts[0]] + 1, "sender \(parts[0]) out of order")
            last[parts[0]] = parts[1]
        }
        #expect(text(try await cell.call("get")) == "\(senders * perSender)")
    }

    @Test func inlineKindsAnswerAnIdleAgentBeforeSendReturns() throws {
        let runtime = makeRuntime()
        for kind in ["echo", "counter", "kv"] {
            let cell = try runtime.makeCell(id: agent("inline-\(kind)"), kind: kind)
            let replies = Replies()
            try cell.send(kind == "echo" ? "say" : "get", payload: bytes(kind == "kv" ? #"{"key":"k"}"# : "{}"), reply: replies.reply(0))
            #expect(replies.count == 1, "\(kind)")
        }
        // A kind that does not answer inline gets a task: its reply comes later.
        let probe = Probe()
        let slow = try makeRuntime(probe: probe).makeCell(id: agent("tasked"), kind: "probe")
        let replies = Replies()
        try slow.send("block", payload: [], reply: replies.reply(0))
        #expect(replies.count == 0)
        probe.open()
    }

    @Test func actionsArrivingDuringAnInlineActionQueueRunInOrderAndStopWaits() async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let cell = try runtime.makeCell(id: agent("inline-held"), kind: "inline-probe", mailboxCapacity: 2)
        let replies = Replies()
        let holder = Thread { try! cell.send("hold", payload: bytes("h"), reply: replies.reply(0)) }
        holder.start()
        #expect(await eventually { probe.entered == 1 })
        for index in 1...2 { try cell.send("record", payload: bytes("\(index)"), reply: replies.reply(index)) }
        await expectMeshError(.busy) { try cell.send("record", payload: bytes("3")) { _ in } }
        #expect(replies.count == 0 && probe.log.isEmpty)
        // A checkpoint waits for the running action; a drain stop waits for everything queued.
        let checkpoint = Task { try await cell.checkpoint() }
        let stopped = Task { await cell.stop(.drain) }
        #expect(await eventually { cell.phase == .stopping })
        probe.open()
        await stopped.value
        #expect(cell.phase == .stopped && probe.log == ["1", "2"] && replies.count == 3)
        #expect(try await checkpoint.value.state == bytes("0"))
        #expect(try await cell.checkpoint().state == bytes("2"))
    }

    @Test func anInlineActionThatThrowsFailsTheAgentLikeAnyOther() async throws {
        let hooks = Hooks()
        let probe = Probe()
        let runtime = makeRuntime(probe: probe, hooks: hooks)
        let cell = try runtime.makeCell(id: agent("inline-crashy"), kind: "inline-probe")
        _ = try await cell.call("record", payload: bytes("a"))
        await expectMeshError(.invalidArgument) { _ = try await cell.call("nope") }
        #expect(cell.phase == .running)
        let error = await expectMeshError(.internalError) { _ = try await cell.call("crash") }
        #expect(error?.message.contains("failed while handling action 'crash'") == true)
        #expect(cell.phase == .failed && hooks.lastFailure?.reason == .threw)
        await expectMeshError(.unavailable) { _ = try await cell.call("get") }
        try cell.restart(restoringFrom: bytes("1"))
        #expect(text(try await cell.call("get")) == "1")
    }

    @Test func agentsRunInParallel() async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let first = try runtime.makeCell(id: agent("p-1"), kind: "probe")
        let second = try runtime.makeCell(id: agent("p-2"), kind: "probe")
        let replies = Replies()
        try first.send("block", payload: [], reply: replies.reply(1))
        try second.send("block", payload: [], reply: replies.reply(2))
        #expect(await eventually { probe.maxRunning == 2 })
        probe.open()
        #expect(await eventually { replies.count == 2 })
    }

    @Test func fullMailboxAnswersBusyAtOnce() async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let cell = try runtime.makeCell(id: agent("small"), kind: "probe", mailboxCapacity: 2)
        let replies = Replies()
        try cell.send("block", payload: [], reply: replies.reply(0))
        #expect(await eventually { probe.entered == 1 })
        try cell.send("record", payload: bytes("a"), reply: replies.reply(1))
        try cell.send("record", payload: bytes("b"), reply: replies.reply(2))
        #expect(cell.queuedCount == 2)
        let busy = await expectMeshError(.busy) { try cell.send("record", payload: bytes("c"), reply: replies.reply(3)) }
        #expect(busy?.retryAfter != nil)
        #expect(busy?.message.contains("mailbox of agent small is full") == true)
        probe.open()
        #expect(await eventually { replies.count == 3 })
        #expect(replies[3] == nil)
        #expect(probe.log == ["a", "b"])
        // Room again once drained.
        #expect(try await cell.call("record", payload: bytes("d")) == bytes("d"))
    }

    @Test func deadlinePassedWhileQueuedAnswersTimeoutWithoutRunning() async throws {
        let probe = Probe()
        let hooks = Hooks()
        let runtime = makeRuntime(probe: probe, hooks: hooks)
        let cell = try runtime.makeCell(id: agent("queued"), kind: "probe")
        let replies = Replies()
        try cell.send("block", payload: [], reply: replies.reply(0))
        #expect(await eventually { probe.entered == 1 })
        try cell.send("record", payload: bytes("late"), deadline: .now + .milliseconds(30), reply: replies.reply(1))
        try cell.send("record", payload: bytes("in-time"), reply: replies.reply(2))
        try await Task.sleep(for: .milliseconds(60))
        probe.open()
        #expect(await eventually { replies.count == 3 })
        guard case .failure(let error)? = replies[1] else { Issue.record("expected a timeout"); return }
        #expect(error.code == .timeout)
        #expect(probe.log == ["in-time"])
        #expect(hooks.failureCount == 0)
        #expect(cell.phase == .running)
    }

    @Test func expiredDeadlineIsRefusedAtSend() async throws {
        let runtime = makeRuntime()
        let cell = try runtime.makeCell(id: agent("echo-2"), kind: "echo")
        await expectMeshError(.timeout) { try cell.send("x", payload: [], deadline: .now - .seconds(1)) { _ in } }
    }

    @Test func overrunningHandlerTimesOutFailsTheAgentAndIsCancelled() async throws {
        let probe = Probe()
        let hooks = Hooks()
        let runtime = makeRuntime(probe: probe, hooks: hooks)
        let cell = try runtime.makeCell(id: agent("slow"), kind: "probe", actionTimeout: .seconds(30))
        let replies = Replies()
        let started = ContinuousClock.now
        // The caller's deadline (earlier than the agent's 30 s) governs.
        try cell.send("block", payload: [], deadline: .now + .milliseconds(500), reply: replies.reply(0))
        try #require(await eventually { probe.entered == 1 }, "the action expired before it started (machine overloaded)")
        try cell.send("record", payload: bytes("queued"), reply: replies.reply(1))
        #expect(await eventually { replies.count == 2 })
        #expect(ContinuousClock.now - started < .seconds(20))
        guard case .failure(let timeout)? = replies[0], case .failure(let rejected)? = replies[1] else {
            Issue.record("expected failures")
            return
        }
        #expect(timeout.code == .timeout)
        #expect(rejected.code == .unavailable && rejected.retryAfter != nil)
        #expect(await eventually { hooks.failureCount == 1 })
        #expect(hooks.lastFailure?.reason == .timedOut)
        #expect(hooks.lastFailure?.agentID == agent("slow"))
        #expect(cell.phase == .failed)
        // The handler was cancelled (it honours cancellation, so it is gone).
        #expect(await eventually { probe.state.withLock { $0.running } == 0 })
        let refused = await expectMeshError(.unavailable) { try cell.send("record", payload: []) { _ in } }
        #expect(refused?.message.contains("waiting to be restarted") == true)
        try cell.restart(restoringFrom: nil)
        #expect(cell.phase == .running)
        #expect(try await cell.call("record", payload: bytes("after")) == bytes("after"))
        #expect(probe.log == ["after"])
    }

    @Test func agentTimeoutAppliesWithoutCallerDeadline() async throws {
        let probe = Probe()
        let hooks = Hooks()
        let runtime = makeRuntime(probe: probe, hooks: hooks)
        let cell = try runtime.makeCell(id: agent("short"), kind: "probe", actionTimeout: .milliseconds(500))
        await expectMeshError(.timeout) { _ = try await cell.call("block") }
        // (Under heavy load the action may expire before it starts: then it did not run.)
        if probe.entered == 1 { #expect(await eventually { hooks.failureCount == 1 }) }
    }

    @Test func handlerIgnoringCancellationDoesNotBlockRestart() async throws {
        let probe = Probe()
        let hooks = Hooks()
        let runtime = makeRuntime(probe: probe, hooks: hooks)
        let cell = try runtime.makeCell(id: agent("stubborn"), kind: "probe")
        await expectMeshError(.timeout) { _ = try await cell.call("stubborn", deadline: .now + .milliseconds(500)) }
        try #require(probe.entered == 1, "the action expired before it started (machine overloaded)")
        #expect(cell.phase == .failed)
        try cell.restart(restoringFrom: bytes("5"))
        #expect(text(try await cell.call("get")) == "5")
        #expect(probe.state.withLock { $0.running } == 1)  // the old handler still waits
        probe.open()
        #expect(await eventually { probe.state.withLock { $0.running } == 0 })
        #expect(text(try await cell.call("get")) == "5")  // its late result changed nothing
        #expect(cell.phase == .running)
    }

    @Test func throwingHandlerFailsTheAgentAndRestartRestoresTheSnapshot() async throws {
        let probe = Probe()
        let hooks = Hooks()
        let runtime = makeRuntime(probe: probe, hooks: hooks)
        let cell = try runtime.makeCell(id: agent("crashy"), kind: "probe")
        for entry in ["a", "b", "c"] { _ = try await cell.call("record", payload: bytes(entry)) }
        let saved = try await cell.checkpoint()
        #expect(saved.state == bytes("3"))
        _ = try await cell.call("record", payload: bytes("d"))
        let error = await expectMeshError(.internalError) { _ = try await cell.call("crash") }
        #expect(error?.message.contains("agent crashy failed while handling action 'crash'") == true)
        #expect(await eventually { hooks.failureCount == 1 })
        #expect(hooks.lastFailure?.reason == .threw)
        #expect(hooks.lastFailure?.error is BehaviorFailure)
        #expect(hooks.lastFailure?.description.contains("BehaviorFailure") == true)
        #expect(cell.phase == .failed)
        await expectMeshError(.unavailable) { _ = try await cell.checkpoint() }
        try cell.restart(restoringFrom: saved.state)
        #expect(text(try await cell.call("get")) == "3")
        await expectMeshError(.conflict) { try cell.restart(restoringFrom: nil) }
    }

    @Test func meshErrorIsAnAnswerNotAFailure() async throws {
        let hooks = Hooks()
        let runtime = makeRuntime(hooks: hooks)
        let cell = try runtime.makeCell(id: agent("rejecter"), kind: "fail")
        await expectMeshError(.invalidArgument) { _ = try await cell.call("reject") }
        #expect(cell.phase == .running)
        #expect(try await cell.call("echo", payload: bytes("ok")) == bytes("ok"))
        #expect(hooks.failureCount == 0)
    }

    @Test func failKindEveryNthFailsTheCell() async throws {
        let hooks = Hooks()
        let runtime = makeRuntime(hooks: hooks)
        let cell = try runtime.makeCell(id: agent("flaky"), kind: "fail", config: bytes(#"{"everyNth": 2}"#))
        _ = try await cell.call("x")
        await expectMeshError(.internalError) { _ = try await cell.call("x") }
        #expect(cell.phase == .failed)
        #expect(await eventually { hooks.failureCount == 1 })
    }

    @Test func stopDrainsQueuedWork() async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let cell = try runtime.makeCell(id: agent("drainer"), kind: "probe")
        let replies = Replies()
        try cell.send("block", payload: [], reply: replies.reply(0))
        #expect(await eventually { probe.entered == 1 })
        for index in 1...3 { try cell.send("record", payload: bytes("\(index)"), reply: replies.reply(index)) }
        let stopped = Task { await cell.stop(.drain) }
        #expect(await eventually { cell.phase == .stopping })
        await expectMeshError(.unavailable) { try cell.send("record", payload: []) { _ in } }
        probe.open()
        await stopped.value
        #expect(cell.phase == .stopped)
        #expect(probe.log == ["1", "2", "3"])
        #expect(replies.count == 4)
        // The state stays readable for a final checkpoint.
        #expect(try await cell.checkpoint().state == bytes("3"))
        let refused = await expectMeshError(.unavailable) { try cell.send("record", payload: []) { _ in } }
        #expect(refused?.message == "agent drainer is stopped")
    }

    @Test func stopRejectsQueuedWork() async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let cell = try runtime.makeCell(id: agent("rejector"), kind: "probe")
        let replies = Replies()
        try cell.send("block", payload: [], reply: replies.reply(0))
        #expect(await eventually { probe.entered == 1 })
        for index in 1...3 { try cell.send("record", payload: bytes("\(index)"), reply: replies.reply(index)) }
        let stopped = Task { await cell.stop(.reject) }
        #expect(await eventually { replies.count == 3 })
        for index in 1...3 {
            guard case .failure(let error)? = replies[index] else { Issue.record("expected rejection"); continue }
            #expect(error.code == .unavailable)
        }
        probe.open()
        await stopped.value
        #expect(cell.phase == .stopped)
        #expect(probe.log.isEmpty)
        guard case .success? = replies[0] else { Issue.record("the running action should finish"); return }
    }

    @Test func stopOfAnIdleCellIsImmediate() async throws {
        let runtime = makeRuntime()
        let cell = try runtime.makeCell(id: agent("idle"), kind: "echo")
        await cell.stop()
        #expect(cell.phase == .stopped)
        await cell.stop()
    }

    @Test func checkpointTracking() async throws {
        let hooks = Hooks()
        let runtime = makeRuntime(hooks: hooks)
        let cell = try runtime.makeCell(id: agent("counted"), kind: "counter")
        #expect(cell.stateVersion == 0 && !cell.needsCheckpoint)
        for _ in 0..<3 { _ = try await cell.call("add", payload: bytes(#"{"by": 2}"#)) }
        _ = try await cell.call("get")
        #expect(cell.stateVersion == 3 && cell.needsCheckpoint)
        #expect(hooks.changeCount == 1)  // once per clean → changed transition
        let first = try await cell.checkpoint()
        #expect(first == AgentCheckpoint(version: 3, state: bytes(#"{"value":6}"#)))
        _ = try await cell.call("add")  // changes while the worker saves
        cell.markCheckpointed(version: first.version)
        #expect(cell.needsCheckpoint)
        #expect(hooks.changeCount == 2)  // told again: still changed after the save
        let second = try await cell.checkpoint()
        cell.markCheckpointed(version: second.version)
        #expect(!cell.needsCheckpoint && hooks.changeCount == 2)
        // A new cell restored from the checkpoint resumes.
        let moved = try runtime.makeCell(id: agent("counted"), kind: "counter", restoringFrom: second.state)
        #expect(text(try await moved.call("get")) == #"{"value":7}"#)
        // Stateless kinds never need one.
        let echo = try runtime.makeCell(id: agent("e"), kind: "echo")
        _ = try await echo.call("x")
        #expect(!echo.needsCheckpoint)
        #expect(try await echo.checkpoint().state == nil)
    }

    @Test func kvCellCheckpointRoundTrip() async throws {
        let runtime = makeRuntime()
        let cell = try runtime.makeCell(id: agent("store"), kind: "kv")
        _ = try await cell.call("put", payload: bytes(#"{"key": "k1", "value": {"deep": [1, "two"]}}"#))
        _ = try await cell.call("put", payload: bytes(#"{"key": "k2", "value": 2}"#))
        let saved = try await cell.checkpoint()
        let restored = try runtime.makeCell(id: agent("store"), kind: "kv", restoringFrom: saved.state)
        #expect(text(try await restored.call("get", payload: bytes(#"{"key": "k1"}"#))) == #"{"key":"k1","value":{"deep":[1,"two"]}}"#)
        #expect(text(try await restored.call("list")) == #"{"keys":["k1","k2"],"next":null}"#)
        await expectMeshError(.internalError) { _ = try runtime.makeCell(id: agent("store"), kind: "kv", restoringFrom: bytes("not json")) }
    }

    @Test func checkpointWaitsForTheRunningAction() async throws {
        let probe = Probe()
        let runtime = makeRuntime(probe: probe)
        let cell = try runtime.makeCell(id: agent("busy-saver"), kind: "probe")
        _ = try await cell.call("record", payload: bytes("x"))
        let replies = Replies()
        try cell.send("block", payload: [], reply: replies.reply(0))
        #expect(await eventually { probe.entered == 1 })
        let pending = Task { try await cell.checkpoint() }
        try await Task.sleep(for: .milliseconds(20))
        probe.open()
        let saved = try await pending.value
        #expect(saved.state == bytes("1"))
        #expect(replies.count == 1)
    }

    @Test func manyAgentsManyActions() async throws {
        let runtime = makeRuntime()
        let cells = try (0..<200).map { index in try runtime.makeCell(id: agent("c-\(index)"), kind: "counter") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for cell in cells {
                group.addTask { for _ in 0..<20 { _ = try await cell.call("add") } }
            }
            try await group.waitForAll()
        }
        for cell in cells { #expect(text(try await cell.call("get")) == #"{"value":20}"#) }
    }
}
