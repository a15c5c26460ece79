import AgentSDK
import Foundation
import MeshCore
import Testing

@Suite("Kind registry and configuration")
struct RegistryTests {
    @Test func builtInKindsAreRegistered() {
        #expect(KindRegistry.builtIn().kinds == ["counter", "echo", "exec", "fail", "fanout", "http", "kv", "work"])
        #expect(KindRegistry.builtIn().kinds == AgentKindName.builtIn)
    }

    @Test func unknownKindListsKnownKinds() async {
        let error = await expectMeshError(.invalidArgument) { _ = try behavior("nope") }
        #expect(error?.message.contains("unknown agent kind 'nope'") == true)
        #expect(error?.message.contains("counter, echo, exec, fail, fanout, http, kv, work") == true)
    }

    @Test func oversizedConfigIsRefused() async {
        let big = "{\"initial\": 1, \"pad\": \"" + String(repeating: "x", count: KindRegistry.maxConfigBytes) + "\"}"
        let error = await expectMeshError(.tooLarge) { _ = try behavior("counter", big) }
        #expect(error?.message.contains("65536") == true)
    }

    @Test func invalidConfigNamesTheField() async {
        let wrongType = await expectMeshError(.invalidArgument) { _ = try behavior("counter", #"{"initial": "seven"}"#) }
        #expect(wrongType?.message == "invalid config for kind 'counter': field 'initial' has the wrong type (expected an integer)")
        let notJSON = await expectMeshError(.invalidArgument) { _ = try behavior("counter", "{nope") }
        #expect(notJSON?.message == "invalid config for kind 'counter': not valid JSON")
        let notObject = await expectMeshError(.invalidArgument) { _ = try behavior("echo", "[1]") }
        #expect(notObject?.message.hasPrefix("invalid config for kind 'echo'") == true)
        let missing = await expectMeshError(.invalidArgument) { _ = try behavior("exec", "{}") }
        #expect(missing?.message == "invalid config for kind 'exec': field 'command' is required")
        let range = await expectMeshError(.invalidArgument) { _ = try behavior("kv", #"{"maxEntries": 0}"#) }
        #expect(range?.message == "kv config: 'maxEntries' must be within 1...100000")
    }

    @Test func emptyConfigReadsAsEmptyObjectAndUnknownFieldsAreIgnored() throws {
        _ = try behavior("counter", "")
        _ = try behavior("counter", #"{"initial": 3, "futureField": true}"#)
    }

    @Test func validateChecksWithoutAnAgent() async throws {
        try KindRegistry.builtIn().validate(kind: "kv", config: bytes(#"{"maxEntries": 10}"#))
        await expectMeshError(.invalidArgument) { try KindRegistry.builtIn().validate(kind: "kv", config: bytes(#"{"maxEntries": -1}"#)) }
    }

    @Test func customKindsRegister() async throws {
        var registry = KindRegistry()
        registry.register("echo2", EchoKind.self)
        var echo = try behavior("echo2", registry: registry)
        #expect(try await echo.run("x", "hi") == bytes("hi"))
        #expect(registry.kinds == ["echo2"])
    }
}

@Suite("Built-in kinds")
struct KindTests {
    @Test func echoReturnsThePayload() async throws {
        var echo = try behavior("echo")
        #expect(try await echo.run("anything", #"{"a":1}"#) == bytes(#"{"a":1}"#))
        #expect(try await echo.run("other", "") == [])
        #expect(echo.mayChangeState("anything") == false)
        #expect(try echo.snapshot() == nil)
    }

    @Test func counterAddsGetsResets() async throws {
        var counter = try behavior("counter", #"{"initial": 10}"#)
        #expect(text(try await counter.run("add", #"{"by": 5}"#)) == #"{"value":15}"#)
        #expect(text(try await counter.run("add")) == #"{"value":16}"#)
        #expect(text(try await counter.run("add", #"{"by": -20}"#)) == #"{"value":-4}"#)
        #expect(text(try await counter.run("get")) == #"{"value":-4}"#)
        #expect(text(try await counter.run("reset")) == #"{"value":10}"#)
        #expect(counter.mayChangeState("get") == false)
        #expect(counter.mayChangeState("add") == true)
    }

    @Test func counterErrors() async throws {
        var counter = try behavior("counter", #"{"initial": 9223372036854775806}"#)
        let overflow = await expectMeshError(.invalidArgument) { _ = try await counter.run("add", #"{"by": 2}"#) }
        #expect(overflow?.message.contains("overflow") == true)
        #expect(text(try await counter.run("get")) == #"{"value":9223372036854775806}"#)
        let bad = await expectMeshError(.invalidArgument) { _ = try await counter.run("add", #"{"by": "many"}"#) }
        #expect(bad?.message == "counter action 'add': field 'by' has the wrong type (expected an integer)")
        let unknown = await expectMeshError(.invalidArgument) { _ = try await counter.run("mul") }
        #expect(unknown?.message == "kind counter has no action 'mul'; actions: add, get, reset")
    }

    @Test func counterSnapshotRoundTrip() async throws {
        var counter = try behavior("counter")
        _ = try await counter.run("add", #"{"by": 42}"#)
        let snapshot = try #require(try counter.snapshot())
        #expect(text(snapshot) == #"{"value":42}"#)
        var restored = try behavior("counter")
        try restored.restore(from: snapshot)
        #expect(text(try await restored.run("get")) == #"{"value":42}"#)
        await expectMeshError(.invalidArgument) { try restored.restore(from: bytes("garbage")) }
    }

    @Test func kvPutGetDeleteList() async throws {
        var kv = try behavior("kv")
        #expect(text(try await kv.run("put", #"{"key": "b", "value": {"z": 1, "a": [true, null, 2.5]}}"#)) == #"{"created":true,"entries":1}"#)
        #expect(text(try await kv.run("put", #"{"key": "a", "value": "x"}"#)) == #"{"created":true,"entries":2}"#)
        #expect(text(try await kv.run("put", #"{"key": "a", "value": "y"}"#)) == #"{"created":false,"entries":2}"#)
        #expect(text(try await kv.run("get", #"{"key": "b"}"#)) == #"{"key":"b","value":{"a":[true,null,2.5],"z":1}}"#)
        #expect(text(try await kv.run("get", #"{"key": "a"}"#)) == #"{"key":"a","value":"y"}"#)
        await expectMeshError(.notFound) { _ = try await kv.run("get", #"{"key": "c"}"#) }
        #expect(text(try await kv.run("list")) == #"{"keys":["a","b"],"next":null}"#)
        #expect(text(try await kv.run("delete", #"{"key": "a"}"#)) == #"{"deleted":true,"entries":1}"#)
        #expect(text(try await kv.run("delete", #"{"key": "a"}"#)) == #"{"deleted":false,"entries":1}"#)
        #expect(kv.mayChangeState("get") == false && kv.mayChangeState("list") == false && kv.mayChangeState("put"))
    }

    @Test func kvListPagesAndPrefixes() async throws {
        var kv = try behavior("kv")
        for key in ["user/3", "user/1", "user/2", "team/1"] {
            _ = try await kv.run("put", #"{"key": "\#(key)", "value": 1}"#)
        }
        #expect(text(try await kv.run("list", #"{"prefix": "user/", "limit": 2}"#)) == #"{"keys":["user/1","user/2"],"next":"user/2"}"#)
        #expect(text(try await kv.run("list", #"{"prefix": "user/", "limit": 2, "after": "user/2"}"#)) == #"{"keys":["user/3"],"next":null}"#)
        await expectMeshError(.invalidArgument) { _ = try await kv.run("list", #"{"limit": 5000}"#) }
    }

    @Test func kvBounds() async throws {
        var kv = try behavior("kv", #"{"maxEntries": 2, "maxValueBytes": 10, "maxKeyBytes": 4, "maxTotalBytes": 30}"#)
        _ = try await kv.run("put", #"{"key": "a", "value": 1}"#)
        _ = try await kv.run("put", #"{"key": "b", "value": 2}"#)
        let full = await expectMeshError(.tooLarge) { _ = try await kv.run("put", #"{"key": "c", "value": 3}"#) }
        #expect(full?.message.contains("maximum of 2 keys") == true)
        _ = try await kv.run("put", #"{"key": "a", "value": 5}"#)  // replacing is fine when full
        let big = await expectMeshError(.tooLarge) { _ = try await kv.run("put", #"{"key": "a", "value": "0123456789"}"#) }
        #expect(big?.message.contains("the limit is 10") == true)
        #expect(big?.message.contains("0123456789") == false)
        await expectMeshError(.invalidArgument) { _ = try await kv.run("put", #"{"key": "toolong", "value": 1}"#) }
        await expectMeshError(.invalidArgument) { _ = try await kv.run("put", #"{"key": "", "value": 1}"#) }
        await expectMeshError(.invalidArgument) { _ = try await kv.run("put", #"{"value": 1}"#) }
        await expectMeshError(.invalidArgument) { _ = try await kv.run("scan") }
        // Total bound: 2 keys × (1 + 8) bytes fits 30, a third value pushing past it does not.
        var small = try behavior("kv", #"{"maxTotalBytes": 20}"#)
        _ = try await small.run("put", #"{"key": "a", "value": "12345678"}"#)
        await expectMeshError(.tooLarge) { _ = try await small.run("put", #"{"key": "b", "value": "12345678"}"#) }
    }

    @Test func kvSnapshotRoundTrip() async throws {
        var kv = try behavior("kv")
        _ = try await kv.run("put", #"{"key": "x", "value": {"n": [1, 2, 3]}}"#)
        _ = try await kv.run("put", #"{"key": "ü-é", "value": "unicode \"quoted\""}"#)
        let snapshot = try #require(try kv.snapshot())
        #expect(text(snapshot) == #"{"entries":{"x":{"n":[1,2,3]},"ü-é":"unicode \"quoted\""},"v":1}"#)
        var restored = try behavior("kv")
        try restored.restore(from: snapshot)
        #expect(text(try await restored.run("get", #"{"key": "ü-é"}"#)) == #"{"key":"ü-é","value":"unicode \"quoted\""}"#)
        #expect(text(try await restored.run("list")) == #"{"keys":["x","ü-é"],"next":null}"#)
        #expect(try restored.snapshot() == snapshot)
    }

    @Test func workBurnsAndSleeps() async throws {
        var work = try behavior("work")
        #expect(text(try await work.run("cpu", #"{"us": 2000}"#)) == #"{"ms":0,"us":2000}"#)
        #expect(text(try await work.run("sleep", #"{"ms": 5}"#)) == #"{"ms":5,"us":0}"#)
        #expect(text(try await work.run("run", #"{"us": 100, "ms": 1}"#)) == #"{"ms":1,"us":100}"#)
        var defaults = try behavior("work", #"{"defaultMicros": 50, "defaultSleepMs": 2}"#)
        #expect(text(try await defaults.run("run")) == #"{"ms":2,"us":50}"#)
    }

    @Test func workIsBounded() async throws {
        var work = try behavior("work", #"{"maxMicros": 1000, "maxSleepMs": 10}"#)
        await expectMeshError(.invalidArgument) { _ = try await work.run("cpu", #"{"us": 1001}"#) }
        await expectMeshError(.invalidArgument) { _ = try await work.run("sleep", #"{"ms": 11}"#) }
        await expectMeshError(.invalidArgument) { _ = try await work.run("sleep", #"{"ms": -1}"#) }
        await expectMeshError(.invalidArgument) { _ = try await work.run("dance") }
        await expectMeshError(.invalidArgument) { _ = try behavior("work", #"{"maxMicros": 20000000}"#) }
    }

    @Test func workStopsWhenCancelled() async throws {
        let task = Task {
            var work = try behavior("work", #"{"maxMicros": 10000000}"#)
            return try await work.run("cpu", #"{"us": 10000000}"#)
        }
        try await Task.sleep(for: .milliseconds(20))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test func failFailsOnDemandAndEveryNth() async throws {
        var fail = try behavior("fail", #"{"everyNth": 3}"#)
        #expect(try await fail.run("x", "1") == bytes("1"))
        #expect(try await fail.run("x", "2") == bytes("2"))
        await #expect(throws: BehaviorFailure.self) { _ = try await fail.run("x", "3") }
        #expect(try await fail.run("x", "4") == bytes("4"))
        await #expect(throws: BehaviorFailure.self) { _ = try await fail.run("fail") }
        await expectMeshError(.invalidArgument) { _ = try await fail.run("reject") }
        var never = try behavior("fail")
        for _ in 0..<10 { _ = try await never.run("x") }
        await expectMeshError(.invalidArgument) { _ = try behavior("fail", #"{"everyNth": -1}"#) }
    }
}
