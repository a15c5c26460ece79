import Foundation
import LocalServers
import MeshTesting
import Testing

/// `meshctl bench all` as a user runs it, kept short: a local mesh of its own, three
/// scenarios for a couple of seconds at a light constant rate, then the result file's
/// shape, the HTML report, `bench check` and `bench compare` exit codes, and the stored
/// history. Figures are not asserted (benchmarks measure, tests check behaviour).
@Suite(.enabled(if: TestEnvironment.natsAvailable && TestEnvironment.postgresAvailable), .serialized)
struct BenchHarnessTests {
    struct Outcome {
        var status: Int32?
        var output: String
        var error: String
    }

    static func meshctl(_ arguments: [String], in directory: String, timeout: Duration = .seconds(30)) async throws -> Outcome {
        let out = "\(directory)/meshctl-\(UUID().uuidString).out"
        let child = try ChildProcess(executable: try MeshBinaries.path("meshctl"), arguments: arguments, logPath: out, errorLogPath: out + ".err")
        _ = await TestEnvironment.waitUntil(timeout: timeout) { !child.isRunning }
        let status = await child.stop()
        return Outcome(
            status: status, output: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", error: (try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")
    }

    @Test func benchAllWritesAResultFileThatCheckAndCompareJudge() async throws {
        let directory = try TestEnvironment.makeTempDirectory(prefix: "bench")
        chmod(directory, 0o755)  // PostgreSQL may run as another user and must reach its directory.
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let prefix = "\(directory)/results/run"
        let run = try await Self.meshctl(
            [
                "bench", "all", "--scenarios", "actions,registry-lookup,gateway-http,agent-create", "--duration", "2", "--warmup", "0.5", "--profile", "constant:200",
                "--agents", "20", "--workers", "1", "--mesh-dir", "\(directory)/mesh", "--out", prefix,
            ], in: directory, timeout: .seconds(150))
        #expect(run.status == 0, "\(run.error.suffix(3_000))")
        #expect(run.output.contains("RESULT") && run.output.contains("registry-lookup/cache"), "\(run.output)")
        #expect(run.error.contains("in PostgreSQL table bench_runs"), "\(run.error.suffix(1_000))")

        // The result file: documented shape, every result measured with its resources.
        let data = try Data(contentsOf: URL(fileURLWithPath: prefix + ".json"))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(document["schemaVersion"] as? Int == 1 && document["target"] as? String == "local")
        #expect(((document["machine"] as? [String: Any])?["cores"] as? Int ?? 0) >= 1)
        #expect(!(document["gitRevision"] as? String ?? "").isEmpty)
        let results = document["results"] as? [[String: Any]] ?? []
        #expect(results.compactMap { $0["name"] as? String } == [
                "actions", "actions/max", "registry-lookup/nats", "registry-lookup/cache", "gateway-http/health", "gateway-http/action",
                "agent-create", "agent-create/running",
            ])
        for result in results {
            let latency = result["latency"] as? [String: Any] ?? [:]
            #expect((result["operations"] as? Int ?? 0) > 0 && (result["throughput"] as? Double ?? 0) > 0, "\(result["name"] ?? "")")
            for key in ["p50Micros", "p90Micros", "p95Micros", "p99Micros", "p999Micros", "maxMicros"] { #expect(latency[key] is Double, "\(key)") }
            #expect((latency["p50Micros"] as? Double ?? 0) <= (latency["p99Micros"] as? Double ?? 0))
            #expect(result["profile"] as? String == "constant:200" && result["errorRate"] is Double)
            let name = result["name"] as? String ?? ""
            if name.hasPrefix("gateway-http") || name.hasPrefix("agent-create") { #expect(result["errors"] as? Int == 0, "\(result)") }
            // Agents running: every agent created (warm-up included), each until it runs.
            if name == "agent-create/running" {
                let window = results.first { $0["name"] as? String == "agent-create" }?["operations"] as? Int ?? 0
                #expect((result["operations"] as? Int ?? 0) >= window && window > 0, "\(result)")
            } else {
                #expect((result["timeline"] as? [[String: Any]] ?? []).count >= 3)
            }
            let resources = result["resources"] as? [String: Any] ?? [:]
            #expect(resources["sampled"] as? Bool == true && (resources["rssBytes"] as? Int ?? 0) > 0)
            #expect((resources["processes"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "mesh-agent-worker" })
        }
        let html = try String(contentsOfFile: prefix + ".html", encoding: .utf8)
        #expect(html.contains("<svg") && !html.contains("<script"))

        // bench check: pass, fail, bad input.
        try """
            version: 1
            targets:
              - {result: actions, metric: throughput, min: 1}
              - {result: registry-lookup/cache, metric: error_rate, max: 0}
            """.write(toFile: "\(directory)/pass.yaml", atomically: true, encoding: .utf8)
        try """
            version: 1
            targets:
              - {result: actions, metric: throughput, min: 1000000000}
            """.write(toFile: "\(directory)/fail.yaml", atomically: true, encoding: .utf8)
        try "version: 1\ntargets: [".write(toFile: "\(directory)/broken.yaml", atomically: true, encoding: .utf8)
        let pass = try await Self.meshctl(["bench", "check", "--slo", "\(directory)/pass.yaml", prefix + ".json"], in: directory)
        #expect(pass.status == 0 && pass.output.contains("2 passed, 0 failed"), "\(pass)")
        let fail = try await Self.meshctl(["bench", "check", "--slo", "\(directory)/fail.yaml", prefix + ".json"], in: directory)
        #expect(fail.status == 1 && fail.output.contains("FAIL"), "\(fail)")
        let broken = try await Self.meshctl(["bench", "check", "--slo", "\(directory)/broken.yaml", prefix + ".json"], in: directory)
        #expect(broken.status == 3 && broken.error.contains("not valid YAML"), "\(broken)")
        let missing = try await Self.meshctl(["bench", "check", "\(directory)/nope.json"], in: directory)
        #expect(missing.status == 3 && missing.error.contains("cannot read"), "\(missing)")

        // bench compare: against itself ok; against a baseline twice as fast, critical.
        let same = try await Self.meshctl(["bench", "compare", "--baseline", prefix + ".json", prefix + ".json"], in: directory)
        #expect(same.status == 0 && same.output.contains("verdict: ok"), "\(same)")
        var doctored = document
        doctored["results"] = results.map { result -> [String: Any] in
            var result = result
            result["throughput"] = (result["throughput"] as? Double ?? 0) * 2
            return result
        }
        try JSONSerialization.data(withJSONObject: doctored).write(to: URL(fileURLWithPath: "\(directory)/fast.json"))
        let slower = try await Self.meshctl(["bench", "compare", "--baseline", "\(directory)/fast.json", prefix + ".json"], in: directory)
        #expect(slower.status == 2 && slower.output.contains("verdict: critical"), "\(slower)")

        // The run is in bench_runs of the mesh's PostgreSQL (started again for the query).
        let history = try await Self.meshctl(["bench", "history", "--mesh-dir", "\(directory)/mesh", "--scenario", "registry-lookup", "-o", "json"], in: directory, timeout: .seconds(60))
        let rows = (try? JSONSerialization.jsonObject(with: Data(history.output.utf8)) as? [[String: Any]]) ?? []
        #expect(history.status == 0 && Set(rows.compactMap { $0["name"] as? String }) == ["registry-lookup/nats", "registry-lookup/cache"], "\(history)")
    }
}
