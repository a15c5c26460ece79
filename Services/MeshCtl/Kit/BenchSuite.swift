import ArgumentParser
import Foundation
import LocalServers
import Logging
import MeshBench
import MeshCore

/// Where the mesh under test is (`bench run`, `bench all`, `bench compare --runs`).
struct BenchTargetOptions: ParsableArguments {
    @Option(name: .customLong("nats-url"), help: "NATS URL of a running mesh (env MESH_NATS_URL for `bench run`).")
    var natsURL: String?

    @Option(name: .customLong("state-dir"), help: "State directory of a running local mesh (meshctl up); `bench run` defaults to .mesh.")
    var stateDirectory: String?

    @Option(name: .customLong("prefix"), help: "Subject prefix of the mesh (env MESH_PREFIX).")
    var prefix: String = MeshEnvironment.string("MESH_PREFIX") ?? Subjects.defaultPrefix

    @Option(name: .customLong("gateway"), help: "Gateway URL http://HOST:PORT for gateway-http (env MESH_GATEWAY; default: the local mesh's).")
    var gateway: String?

    @Option(name: .customLong("api-key"), help: "Gateway API key (env MESH_API_KEY; default: the local mesh's admin key file).")
    var apiKey: String?

    @Option(name: .customLong("postgres-url"), help: "PostgreSQL for the bench_runs table (env MESH_POSTGRES_URL; default: the local mesh's).")
    var postgresURL: String?

    func validate() throws {
        guard Identifier.isValid(prefix) else { throw ValidationError("--prefix must match [a-z0-9][a-z0-9_-]{0,62}") }
        if let gateway, URLComponents(string: gateway)?.scheme != "http" { throw ValidationError("--gateway must be http://HOST:PORT") }
        if let natsURL, !natsURL.hasPrefix("nats://") && !natsURL.hasPrefix("tls://") { throw ValidationError("--nats-url must be nats://HOST:PORT") }
    }

    /// Whether a running mesh was named explicitly.
    var namesRunningMesh: Bool { natsURL != nil || stateDirectory != nil }

    /// The running mesh these options name (for `bench all`: only when named explicitly).
    func resolveRunning() throws -> ResolvedBenchTarget {
        let directory = URL(fileURLWithPath: stateDirectory ?? MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh").standardizedFileURL.path
        let local = LocalMeshState.read(stateDirectory: directory).flatMap { $0.isAlive ? $0 : nil }
        if stateDirectory != nil && natsURL == nil && local == nil { throw CLIError("no mesh is running from \(directory) (meshctl up)") }
        let url = natsURL ?? local?.natsURL ?? MeshEnvironment.string("MESH_NATS_URL") ?? "nats://127.0.0.1:4222"
        let useLocal = local != nil && (natsURL == nil || natsURL == local?.natsURL)
        let key = apiKey ?? MeshEnvironment.string("MESH_API_KEY")
            ?? (useLocal ? (try? String(contentsOfFile: LocalMeshState.keyPath(stateDirectory: directory), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) : nil)
        return ResolvedBenchTarget(
            natsURL: url, prefix: prefix, gatewayURL: gateway ?? MeshEnvironment.string("MESH_GATEWAY") ?? (useLocal ? local?.gatewayURL : nil), apiKey: key,
            postgresURL: postgresURL ?? MeshEnvironment.string("MESH_POSTGRES_URL") ?? (useLocal ? local?.postgresURL : nil),
            processes: useLocal ? (local?.processes.map { MeshProcess(name: $0.name, pid: $0.pid) } ?? []) : [], label: url)
    }
}

/// The mesh a suite runs against, resolved.
struct ResolvedBenchTarget: Sendable {
    var natsURL: String
    var prefix: String
    var gatewayURL: String?
    var apiKey: String?
    var postgresURL: String?
    /// Processes whose CPU/RSS are sampled; empty when unknown (a mesh reached by URL only).
    var processes: [MeshProcess]
    /// For the result file: "local" or the NATS URL.
    var label: String
    /// The mesh's processes that exited (a local mesh started by the run), for failures.
    var exitedProcesses: (@Sendable () -> [String])? = nil
}

/// Options of the measurements themselves.
struct BenchRunOptions: ParsableArguments {
    @Option(name: .customLong("duration"), help: "Measured seconds per scenario (after the warm-up).")
    var duration: Double = 10

    @Option(name: .customLong("warmup"), help: "Warm-up seconds per scenario (load applied, not measured).")
    var warmup: Double = 2

    @Option(name: .customLong("profile"), help: "Load profile for every scenario: max[:N] | constant:R | ramp:A,B | step:A,S,Ds | spike:B,P,Ts,Ls.")
    var profile: String?

    @Option(name: .customLong("agents"), help: "Echo agents the actions, registry-lookup and tasks scenarios spread over.")
    var agents: Int = 200

    @Option(name: .customLong("payload"), help: "Payload bytes of actions, events, tasks and raw NATS messages.")
    var payload: Int = 128

    @Option(name: .customLong("subscribers"), help: "Subscriber counts of the events scenario, comma-separated.")
    var subscribers: String = "1,100,1000"

    @Option(name: .customLong("connections"), help: "HTTP connections of gateway-http.")
    var connections: Int = 64

    @Option(name: .customLong("failover-runs"), help: "Workers killed by the failover scenario.")
    var failoverRuns: Int = 3

    @Option(name: .customLong("runs"), help: "Repeat the whole selection this many times (medians and spread over the runs).")
    var runs: Int = 1

    @Option(name: .customLong("out"), help: "Result files prefix: writes PREFIX.json and PREFIX.html (default bench-results/bench-<UTC time>).")
    var out: String?

    @Flag(name: .customLong("no-store"), help: "Do not record the runs in PostgreSQL (bench_runs).")
    var noStore = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "Summary on stdout: table|json (the whole document).")
    var output: OutputFormat = .table

    func validate() throws {
        guard duration.isFinite, (0.5...3_600).contains(duration) else { throw ValidationError("--duration must be in 0.5...3600 seconds") }
        guard warmup.isFinite, (0...600).contains(warmup) else { throw ValidationError("--warmup must be in 0...600 seconds") }
        if let profile {
            do { _ = try LoadProfile(parsing: profile) } catch { throw ValidationError("--profile: \(error.message)") }
        }
        guard (1...100_000).contains(agents) else { throw ValidationError("--agents must be in 1...100000") }
        guard (0...65_536).contains(payload) else { throw ValidationError("--payload must be in 0...65536") }
        guard (try? parsedSubscribers()) != nil else { throw ValidationError("--subscribers must be comma-separated counts in 1...10000") }
        guard (1...4_096).contains(connections) else { throw ValidationError("--connections must be in 1...4096") }
        guard (1...100).contains(failoverRuns) else { throw ValidationError("--failover-runs must be in 1...100") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be in 1...20") }
    }

    func parsedSubscribers() throws -> [Int] {
        let values = subscribers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count <= 8, values.allSatisfy({ $0 != nil && (1...10_000).contains($0!) }) else { throw CLIError("bad --subscribers") }
        return values.map { $0! }
    }

    func settings() throws -> ScenarioSettings {
        var settings = ScenarioSettings()
        settings.duration = duration
        settings.warmup = warmup
        settings.profile = try profile.map { try LoadProfile(parsing: $0) }
        settings.agents = agents
        settings.payloadBytes = payload
        settings.subscribers = try parsedSubscribers()
        settings.httpConnections = connections
        settings.failoverRuns = failoverRuns
        return settings
    }

    /// `out` or the default prefix.
    var outputPrefix: String {
        if let out { return out }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return "bench-results/bench-\(formatter.string(from: Date()))"
    }
}

/// One entry of a suite: a scenario, optionally under another result name and profile.
struct SuiteEntry: Sendable {
    var scenario: BenchScenario
    var name: String?
    var profile: LoadProfile?
}

/// Runs scenarios against a target, writes the result files, stores the runs, prints
/// the summary. Shared by `bench run`, `bench all` and `bench compare --runs`.
enum BenchSuite {
    /// The `bench all` selection: raw references first, then the mesh scenarios, the
    /// failover on a mesh of its own, and agent creation last.
    static let all: [SuiteEntry] = [
        SuiteEntry(scenario: .natsRaw),
        SuiteEntry(scenario: .actions, name: "actions", profile: .constant(rate: Double(BenchRatio.constantActionRate))),
        SuiteEntry(scenario: .actions, name: "actions/max", profile: .max(inFlight: 256)),
        SuiteEntry(scenario: .lifecycle), SuiteEntry(scenario: .registryLookup), SuiteEntry(scenario: .events), SuiteEntry(scenario: .tasks),
        SuiteEntry(scenario: .gatewayHTTP),
        // The failover on a mesh of its own while the shared mesh is quiet: after agent-create
        // it would compete with that mesh deleting tens of thousands of agents.
        SuiteEntry(scenario: .failover),
        // Last: thousands of agents created and deleted leave the workers starting and
        // stopping agents for a while after the window.
        SuiteEntry(scenario: .agentCreate),
    ]

    /// The entries that measure `results` again: per result its scenario, its result name
    /// (for scenarios with one result) and its profile.
    static func entries(reproducing results: [BenchResult]) -> [SuiteEntry] {
        var entries: [SuiteEntry] = []
        var seen: Set<String> = []
        for result in results {
            guard let scenario = BenchScenario(rawValue: result.scenario) else { continue }
            let variants: Set<BenchScenario> = [.registryLookup, .events, .gatewayHTTP, .natsRaw]
            let name = variants.contains(scenario) ? nil : result.name
            let profile = scenario.takesProfile ? try? LoadProfile(parsing: result.profile) : nil
            let key = "\(scenario.rawValue)|\(name ?? "")|\(profile?.description ?? "")"
            if seen.insert(key).inserted { entries.append(SuiteEntry(scenario: scenario, name: name, profile: profile)) }
        }
        return entries
    }

    /// Waits until the mesh's processes are nearly idle (together < ``settledCPU`` of one core
    /// over a ``settleWindow``), at most ``settleTimeout``: a scenario started while the mesh
    /// still places shards after its start, or writes the history of the previous scenario,
    /// would measure that work too — the raw references at the start of `bench all` ran at a
    /// tenth of their speed that way. Only for a mesh whose processes are known (local).
    static func settle(_ processes: [MeshProcess]) async {
        guard !processes.isEmpty else { return }
        func cpuSeconds() -> Double { processes.reduce(0) { $0 + (ProcessStats.read(pid: $1.pid)?.cpuSeconds ?? 0) } }
        let clock = ContinuousClock()
        let start = clock.now
        var busy = 1.0
        while clock.now - start < settleTimeout {
            let before = cpuSeconds()
            try? await Task.sleep(for: settleWindow)
            busy = (cpuSeconds() - before) / settleWindow.totalSeconds
            if busy < settledCPU { break }
        }
        let waited = clock.now - start
        if waited > .seconds(1) {
            let state = busy < settledCPU ? "settled" : "still busy"
            FileHandle.standardError.write(Data(String(format: "bench: the mesh %@ after %.1f s (%.0f %% CPU)\n", state, waited.totalSeconds, busy * 100).utf8))
        }
    }

    static let settleWindow: Duration = .milliseconds(500)
    static let settleTimeout: Duration = .seconds(20)
    /// Idle: the heartbeats, snapshots and watches of a mesh at rest use a few percent.
    static let settledCPU = 0.25

    /// Runs `entries` `runs` times.
    static func measure(_ entries: [SuiteEntry], target: ResolvedBenchTarget, settings: ScenarioSettings, runs: Int) async throws -> BenchDocument {
        let needsMesh = entries.contains { $0.scenario != .failover }
        let session = needsMesh
            ? try await BenchSession(natsURL: target.natsURL, prefix: target.prefix, gatewayURL: target.gatewayURL, apiKey: target.apiKey, processes: target.processes)
            : nil
        defer { session?.close() }
        var results: [BenchResult] = []
        var failures: [BenchFailure] = []
        for run in 1...runs {
            for entry in entries {
                try Task.checkCancellation()  // Ctrl-C: stop between scenarios
                var settings = settings
                settings.run = run
                if let name = entry.name { settings.name = name }
                if settings.profile == nil || !entry.scenario.takesProfile { settings.profile = entry.profile }
                FileHandle.standardError.write(Data("bench: run \(run)/\(runs): \(settings.name ?? entry.scenario.rawValue)\n".utf8))
                await settle(target.processes)
                // A scenario that fails is recorded and the suite goes on: one broken
                // scenario must not cost the figures of the others.
                do {
                    if let session {
                        results += try await ScenarioRunner(session: session, settings: settings).run(entry.scenario)
                    } else {
                        results += try await ScenarioRunner.failoverOnly(settings: settings)
                    }
                } catch {
                    var text = String(describing: error)
                    let exited = target.exitedProcesses?() ?? []
                    if !exited.isEmpty { text += " — " + exited.joined(separator: "; ") }
                    failures.append(BenchFailure(scenario: settings.name ?? entry.scenario.rawValue, run: run, error: text))
                    FileHandle.standardError.write(Data("bench: \(settings.name ?? entry.scenario.rawValue) failed: \(text)\n".utf8))
                }
            }
        }
        return BenchDocument(
            createdAt: Date(), gitRevision: gitRevision(), machine: .current, target: target.label, results: results, ratios: BenchRatio.standard(results),
            failures: failures)
    }

    /// `MESH_GIT_REVISION`, else `git rev-parse HEAD` in the working directory, else "unknown".
    static func gitRevision() -> String {
        if let revision = MeshEnvironment.string("MESH_GIT_REVISION") { return revision }
        guard let git = LocalHost.which("git") else { return "unknown" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: git)
        process.arguments = ["rev-parse", "HEAD"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return "unknown" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return process.terminationStatus == 0 && text.count == 40 ? text : "unknown"
    }

    /// Writes PREFIX.json and PREFIX.html, stores the runs, prints the summary (failed
    /// scenarios included; the callers exit 1 when there are any).
    static func finish(_ document: BenchDocument, options: BenchRunOptions, postgresURL: String?) async throws {
        let prefix = options.outputPrefix
        let directory = URL(fileURLWithPath: prefix).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try document.encoded().write(to: URL(fileURLWithPath: prefix + ".json"), options: .atomic)
        try Data(HTMLReport.render(document).utf8).write(to: URL(fileURLWithPath: prefix + ".html"), options: .atomic)
        if options.output == .json {
            say(String(decoding: try document.encoded(), as: UTF8.self))
        } else {
            say(summary(document))
        }
        let note: String
        if options.noStore {
            note = "not stored in PostgreSQL (--no-store)"
        } else if let postgresURL {
            let store = BenchStore(url: postgresURL)
            defer { store.close() }
            do {
                note = "stored \(try await store.save(document)) result(s) in PostgreSQL table bench_runs"
            } catch {
                note = "could not store the runs in PostgreSQL (\(error)); the result files have everything"
            }
        } else {
            note = "no PostgreSQL (--postgres-url, MESH_POSTGRES_URL or a local mesh): runs not stored in bench_runs; the result files have everything"
        }
        FileHandle.standardError.write(Data("bench: results in \(prefix).json and \(prefix).html; \(note)\n".utf8))
        if let failures = document.failures, !failures.isEmpty {
            FileHandle.standardError.write(Data("bench: \(failures.count) scenario run(s) failed: \(failures.map(\.scenario).joined(separator: ", "))\n".utf8))
        }
    }

    /// The summary table and ratios.
    static func summary(_ document: BenchDocument) -> String {
        var rows = [["RESULT", "RUN", "PROFILE", "OPS/S", "P50", "P90", "P99", "P99.9", "MAX", "ERRORS", "CPU%", "RSS MiB"]]
        for r in document.results {
            rows.append([
                r.name, String(r.run), r.profile, r.scenario == BenchScenario.failover.rawValue ? "-" : String(format: "%.0f", r.throughput),
                HTMLReport.micros(r.latency.p50Micros),
                HTMLReport.micros(r.latency.p90Micros), HTMLReport.micros(r.latency.p99Micros), HTMLReport.micros(r.latency.p999Micros),
                HTMLReport.micros(r.latency.maxMicros), r.errors == 0 ? "0" : String(format: "%d (%.2f%%)", r.errors, r.errorRate * 100),
                r.resources.sampled ? String(format: "%.0f", r.resources.cpuPercent) : "-", r.resources.sampled ? String(r.resources.rssBytes >> 20) : "-",
            ])
        }
        var text = Table.render(rows)
        // Repeated runs: medians and spread ((max − min) ÷ median) per result.
        var names: [String] = []
        for result in document.results where !names.contains(result.name) { names.append(result.name) }
        let repeated = names.filter { name in document.results.filter { $0.name == name }.count > 1 }
        if !repeated.isEmpty {
            var medians = [["RESULT", "RUNS", "OPS/S (MEDIAN)", "SPREAD", "P99 (MEDIAN)", "SPREAD"]]
            for name in repeated {
                let runs = document.results.filter { $0.name == name }
                let throughput = runs.map(\.throughput)
                let p99 = runs.map(\.latency.p99Micros)
                medians.append([
                    name, String(runs.count), String(format: "%.0f", Statistics.median(throughput) ?? 0),
                    String(format: "%.1f %%", Statistics.relativeSpread(throughput) * 100), HTMLReport.micros(Statistics.median(p99) ?? 0),
                    String(format: "%.1f %%", Statistics.relativeSpread(p99) * 100),
                ])
            }
            text += "\n\n" + Table.render(medians)
        }
        if !document.ratios.isEmpty {
            text += "\n\n" + document.ratios.map { String(format: "%@: %.1f %%", $0.name, $0.value * 100) }.joined(separator: "\n")
        }
        for failure in document.failures ?? [] { text += "\nFAILED \(failure.scenario) (run \(failure.run)): \(failure.error)" }
        text += "\n(revision \(document.gitRevision.prefix(12)), \(document.machine.cores) cores, target \(document.target))"
        return text
    }
}

extension ScenarioRunner {
    /// The failover scenario needs no mesh of the caller's: it starts its own.
    static func failoverOnly(settings: ScenarioSettings) async throws -> [BenchResult] {
        var options = BenchFailover.Settings()
        options.runs = settings.failoverRuns
        options.agents = settings.failoverAgents
        return [try await failoverResult(name: settings.name ?? BenchScenario.failover.rawValue, run: settings.run, options: options)]
    }
}

/// Measures failovers and turns them into a result.
func failoverResult(name: String, run: Int, options: BenchFailover.Settings) async throws -> BenchResult {
    let started = Date()
    let clock = ContinuousClock()
    let begin = clock.now
    let runs = try await BenchFailover.measure(options) { FileHandle.standardError.write(Data("bench: failover: \($0)\n".utf8)) }
    var histogram = LogLinearHistogram()
    for run in runs { histogram.record(UInt64(run.recoveryMs * 1_000_000)) }
    let placement = runs.map(\.placementMs).sorted()
    return BenchResult(
        name: name, scenario: BenchScenario.failover.rawValue, run: run,
        parameters: [
            "runs": String(runs.count), "workers": String(options.workers), "agents": String(options.agents),
            "heartbeatIntervalMs": String(options.heartbeatMs), "placementP50Ms": String(format: "%.0f", placement.isEmpty ? 0 : placement[placement.count / 2]),
            "placementMaxMs": String(format: "%.0f", placement.last ?? 0), "lostAgents": String(runs.reduce(0) { $0 + $1.lost }),
        ],
        profile: LoadProfile.max(inFlight: 32).description, startedAt: started, warmupSeconds: 0, durationSeconds: (clock.now - begin).totalSeconds,
        operations: runs.count, errors: runs.filter { $0.lost > 0 }.count, histogram: histogram, timeline: [], resources: .none,
        notes: ["latency: SIGKILL of a worker → every agent it hosted answered again (a mesh of its own); an error = a run where an agent lost its checkpointed count"])
}
