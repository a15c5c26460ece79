import Foundation
import LocalServers
import MeshCore
import MeshTesting
import Testing

/// `meshctl agents create/ls/get/rm` against a real `mesh-registry` process.
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct MeshCtlAgentsTests {
    @Test func createListGetRemoveFromJSONAndYAMLFiles() async throws {
        let nats = try await NatsServer.start()
        defer { nats.stop() }
        let postgres = try await PostgresServer.start()
        defer { postgres.stop() }
        let dir = try TestEnvironment.makeTempDirectory(prefix: "ctl-agents")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = try ChildProcess(
            executable: try MeshBinaries.path("mesh-registry"), arguments: [], logPath: "\(dir)/registry.log",
            environment: ["MESH_NATS_URL": nats.url, "MESH_POSTGRES_URL": postgres.connectionString, "MESH_INSTANCE_ID": "registry-1"])
        defer { registry.kill9() }
        let serving = await TestEnvironment.waitUntil(timeout: .seconds(60)) {
            (try? String(contentsOfFile: "\(dir)/registry.log", encoding: .utf8))?.contains("registry serving") ?? false
        }
        #expect(serving, "\(registry.logTail())")

        let meshctl = try MeshBinaries.path("meshctl")
        func run(_ arguments: [String]) async throws -> (status: Int32?, output: String, error: String) {
            let out = "\(dir)/meshctl-\(UUID().uuidString).out"
            let child = try ChildProcess(executable: meshctl, arguments: arguments + ["--nats-url", nats.url], logPath: out, errorLogPath: out + ".err")
            _ = await TestEnvironment.waitUntil(timeout: .seconds(30)) { !child.isRunning }
            let status = await child.stop()
            return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")
        }

        try #"{"id": "counter-1", "kind": "counter", "config": {"initial": 5}, "labels": {"team": "search", "tier": "gold"}, "restart": "transient", "mailbox_capacity": 512}"#
            .write(toFile: "\(dir)/counter.json", atomically: true, encoding: .utf8)
        try """
            - id: echo-1
              kind: echo
              labels: {team: search}
            - id: echo-2
              kind: echo
              labels:
                team: ads
              group_strategy: one_for_all
            """.write(toFile: "\(dir)/echoes.yaml", atomically: true, encoding: .utf8)

        let created = try await run(["agents", "create", "-f", "\(dir)/counter.json"])
        #expect(created.status == 0 && created.output.contains("agent counter-1 created"), "\(created)")
        let yaml = try await run(["agents", "create", "-f", "\(dir)/echoes.yaml"])
        #expect(yaml.status == 0 && yaml.output.contains("echo-2 created"), "\(yaml)")
        let again = try await run(["agents", "create", "-f", "\(dir)/counter.json"])
        #expect(again.status != 0 && again.error.contains("already_exists"), "\(again)")

        let table = try await run(["agents", "ls"])
        #expect(table.status == 0)
        let lines = table.output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("ID") == true && lines.count == 4, "\(table.output)")
        #expect(lines.dropFirst().map { $0.split(separator: " ").first.map(String.init) ?? "" } == ["counter-1", "echo-1", "echo-2"])

        let selected = try await run(["agents", "ls", "--selector", "team=search", "-o", "json"])
        let objects = try JSONSerialization.jsonObject(with: Data(selected.output.utf8)) as? [[String: Any]] ?? []
        #expect(objects.compactMap { $0["id"] as? String } == ["counter-1", "echo-1"], "\(selected)")
        #expect(objects.first?["status"] as? String == "pending")

        let got = try await run(["agents", "get", "counter-1", "-o", "json"])
        let record = try JSONSerialization.jsonObject(with: Data(got.output.utf8)) as? [String: Any] ?? [:]
        #expect(record["kind"] as? String == "counter" && record["restart"] as? String == "transient")
        #expect((record["config"] as? [String: Any])?["initial"] as? Int == 5 && record["mailbox_capacity"] as? Int == 512)
        #expect(record["generation"] as? Int == 1 && (record["revision"] as? Int ?? 0) > 0)
        let shown = try await run(["agents", "get", "echo-2"])
        #expect(shown.status == 0 && shown.output.contains("one_for_all"))

        let removed = try await run(["agents", "rm", "echo-1"])
        #expect(removed.status == 0 && removed.output.contains("echo-1 deleted"), "\(removed)")
        #expect(try await run(["agents", "get", "echo-1"]).error.contains("not_found"))
        #expect(try await run(["agents", "rm", "echo-1"]).status != 0)

        // Bad input: a clear message and a non-zero exit, nothing stored.
        try #"{"id": "Bad.Id", "kind": "echo"}"#.write(toFile: "\(dir)/bad-id.json", atomically: true, encoding: .utf8)
        try #"{"id": "x-1", "kind": "nope"}"#.write(toFile: "\(dir)/bad-kind.json", atomically: true, encoding: .utf8)
        try #"{"id": "x-2", "kind": "echo", "colour": "red"}"#.write(toFile: "\(dir)/bad-key.json", atomically: true, encoding: .utf8)
        try #"{"id": "x-3", "kind": "echo""#.write(toFile: "\(dir)/broken.json", atomically: true, encoding: .utf8)
        for (file, fragment) in [
            ("bad-id.json", "invalid_id"), ("bad-kind.json", "unknown kind"), ("bad-key.json", "unknown key"), ("broken.json", "not valid JSON"),
            ("missing.json", "cannot read"),
        ] {
            let result = try await run(["agents", "create", "-f", "\(dir)/\(file)"])
            #expect(result.status != 0 && result.error.contains(fragment), "\(file): \(result)")
        }
        #expect(try await run(["agents", "get", "Bad.Id"]).status != 0)
        #expect(try await run(["agents", "ls", "--selector", "a in ("]).status != 0)
        let final = try await run(["agents", "ls", "-o", "json"])
        let remaining = (try JSONSerialization.jsonObject(with: Data(final.output.utf8)) as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(remaining == ["counter-1", "echo-2"])

        // A long list goes out many at a time: the results in file order, and a spec that
        // fails (an existing id) stops none of the others.
        var specs = (0..<300).map { #"{"id": "many-\#($0)", "kind": "echo"}"# }
        specs.insert(#"{"id": "counter-1", "kind": "counter"}"#, at: 150)
        try "[\(specs.joined(separator: ","))]".write(toFile: "\(dir)/many.json", atomically: true, encoding: .utf8)
        let bulk = try await run(["agents", "create", "-f", "\(dir)/many.json"])
        #expect(bulk.status != 0 && bulk.error.contains("counter-1: already_exists"), "\(bulk.error)")
        let reported = bulk.output.split(separator: "\n").map { $0.split(separator: " ")[1] }
        #expect(reported == (0..<300).map { "many-\($0)"[...] }, "\(bulk.output.prefix(500))")
        // An id listed twice: the later spec wins, as listed.
        try #"[{"id": "twice-1", "kind": "echo", "labels": {"v": "1"}}, {"id": "twice-1", "kind": "echo", "labels": {"v": "2"}}]"#
            .write(toFile: "\(dir)/twice.json", atomically: true, encoding: .utf8)
        #expect(try await run(["agents", "create", "--upsert", "-f", "\(dir)/twice.json"]).status == 0)
        let twice = try JSONSerialization.jsonObject(with: Data(try await run(["agents", "get", "twice-1", "-o", "json"]).output.utf8)) as? [String: Any]
        #expect((twice?["labels"] as? [String: String])?["v"] == "2", "\(String(describing: twice))")
        #expect(registry.isRunning)
    }
}
