import AgentSDK
import Foundation
import MeshCore
import Synchronization
import Testing

@Suite("exec kind")
struct ExecTests {
    static let registry = KindRegistry.builtIn(
        BuiltInKindOptions(exec: ExecPolicy(allowedCommands: ["/bin/cat", "/bin/false", "/bin/echo", "/bin/sleep"])))

    func exec(_ config: String, registry: KindRegistry = ExecTests.registry) throws(MeshError) -> any AgentBehavior {
        try behavior("exec", config, id: "runner", registry: registry)
    }

    @Test func catEchoesJSON() async throws {
        var cat = try exec(#"{"command": "/bin/cat"}"#)
        #expect(text(try await cat.run("transform", #"{"numbers": [1, 2, 3]}"#)) == #"{"numbers": [1, 2, 3]}"#)
        #expect(text(try await cat.run("transform", "")) == "{}")
        await expectMeshError(.invalidArgument) { _ = try await cat.run("transform", "not json") }
    }

    @Test func largeInputAndOutputStream() async throws {
        var cat = try exec(#"{"command": "/bin/cat", "maxOutputBytes": 4000000}"#)
        let big = "[" + Array(repeating: "\"0123456789abcdef\"", count: 20_000).joined(separator: ",") + "]"
        #expect(try await cat.run("big", big).count == big.utf8.count)
    }

    @Test func commandsOffTheAllowListAreRefused() async {
        let shell = await expectMeshError(.permissionDenied) { _ = try exec(#"{"command": "/bin/sh", "args": ["-c", "echo {}"]}"#) }
        #expect(shell?.message == "exec: command /bin/sh is not on this worker's allow-list")
        await expectMeshError(.permissionDenied) { _ = try exec(#"{"command": "/usr/bin/cat"}"#) }
        await expectMeshError(.invalidArgument) { _ = try exec(#"{"command": "cat"}"#) }
        // The kind's own initialiser has no allow-list at all.
        await expectMeshError(.permissionDenied) { _ = try behavior("exec", #"{"command": "/bin/cat"}"#) }
    }

    @Test func nonZeroExitIsAnErrorWithTheStatus() async throws {
        var failing = try exec(#"{"command": "/bin/false"}"#)
        let error = await expectMeshError(.internalError) { _ = try await failing.run("x", "{}") }
        #expect(error?.message == "exec: /bin/false exited with status 1")
    }

    @Test func outputMustBeJSON() async throws {
        var echo = try exec(#"{"command": "/bin/echo", "args": ["hello"]}"#)
        let error = await expectMeshError(.internalError) { _ = try await echo.run("x", "{}") }
        #expect(error?.message == "exec: the output of /bin/echo is not one JSON document")
        var json = try exec(#"{"command": "/bin/echo", "args": ["{\"fixed\": true}"]}"#)
        #expect(text(try await json.run("x", "{}")) == "{\"fixed\": true}\n")
    }

    @Test func timeoutKillsTheProcess() async throws {
        var sleeper = try exec(#"{"command": "/bin/sleep", "args": ["30"], "timeoutMs": 200}"#)
        let started = ContinuousClock.now
        let error = await expectMeshError(.timeout) { _ = try await sleeper.run("x", "{}") }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(error?.message == "exec: /bin/sleep did not finish in time and was killed")
    }

    @Test func actionDeadlineBoundsTheProcessToo() async throws {
        var sleeper = try exec(#"{"command": "/bin/sleep", "args": ["30"]}"#)
        await expectMeshError(.timeout) { _ = try await sleeper.run("x", "{}", deadline: .milliseconds(150)) }
    }

    @Test func outputCapKillsTheProcess() async throws {
        var cat = try exec(#"{"command": "/bin/cat", "maxOutputBytes": 10}"#)
        let error = await expectMeshError(.tooLarge) { _ = try await cat.run("x", #"{"data": "0123456789012345678901234567890123456789"}"#) }
        #expect(error?.message == "exec: /bin/cat wrote more than 10 bytes and was killed")
        #expect(error?.message.contains("0123") == false)
    }

    @Test func environmentIsMinimalAndConfigured() async throws {
        let registry = KindRegistry.builtIn(BuiltInKindOptions(exec: ExecPolicy(allowedCommands: ["/bin/sh"])))
        let script = #"printf '{"agent":"%s","action":"%s","mode":"%s","home":"%s","path":"%s"}' "$MESH_AGENT_ID" "$MESH_ACTION" "$MODE" "$HOME" "$PATH""#
        let config = try String(decoding: JSONSerialization.data(withJSONObject: ["command": "/bin/sh", "args": ["-c", script], "env": ["MODE": "fast"]]), as: UTF8.self)
        var shell = try exec(config, registry: registry)
        let reply = try object(try await shell.run("score", "{}"))
        #expect(reply["agent"] as? String == "runner")
        #expect(reply["action"] as? String == "score")
        #expect(reply["mode"] as? String == "fast")
        #expect(reply["home"] as? String == "")  // the worker's environment is not inherited
        #expect(reply["path"] as? String == "/usr/local/bin:/usr/bin:/bin")
        await expectMeshError(.invalidArgument) { _ = try exec(#"{"command": "/bin/sh", "env": {"MESH_X": "1"}}"#, registry: registry) }
        await expectMeshError(.invalidArgument) { _ = try exec(#"{"command": "/bin/sh", "env": {"BAD-NAME": "1"}}"#, registry: registry) }
    }

    @Test func workingDirectoryIsApplied() async throws {
        let registry = KindRegistry.builtIn(BuiltInKindOptions(exec: ExecPolicy(allowedCommands: ["/bin/sh"])))
        var shell = try exec(#"{"command": "/bin/sh", "args": ["-c", "printf '\"%s\"' \"$(pwd)\""], "workingDirectory": "/tmp"}"#, registry: registry)
        #expect(text(try await shell.run("x", "{}")) == #""/tmp""#)
    }

    @Test func processLimitAnswersBusy() async throws {
        let registry = KindRegistry.builtIn(BuiltInKindOptions(exec: ExecPolicy(allowedCommands: ["/bin/sleep"], maxConcurrentProcesses: 1)))
        let first = Task {
            var sleeper = try behavior("exec", #"{"command": "/bin/sleep", "args": ["0.5"], "timeoutMs": 5000}"#, registry: registry)
            _ = try? await sleeper.run("x", "{}")
        }
        try await Task.sleep(for: .milliseconds(100))
        var second = try behavior("exec", #"{"command": "/bin/sleep", "args": ["0"]}"#, registry: registry)
        await expectMeshError(.busy) { _ = try await second.run("x", "{}") }
        try await first.value
    }

    @Test func execFailureDoesNotFailTheAgent() async throws {
        let hooks = Hooks()
        let runtime = AgentRuntime(
            registry: ExecTests.registry, logger: quietLogger, onFailure: { failure in hooks.failures.withLock { $0.append(failure) } })
        let cell = try runtime.makeCell(id: agent("exec-cell"), kind: "exec", config: bytes(#"{"command": "/bin/false"}"#))
        await expectMeshError(.internalError) { _ = try await cell.call("x", payload: bytes("{}")) }
        #expect(cell.phase == .running && hooks.failureCount == 0)
    }
}
