import ArgumentParser
import Foundation
import LocalServers
import Logging
import MeshBench
import MeshCore
import UnixSignals

/// Exit status of `bench check` / `bench compare` for unusable input (a missing or
/// malformed SLO, result or baseline file), distinct from a failed check (1) and a
/// critical regression (2).
let benchInputErrorExit: Int32 = 3

/// Prints `error` and exits with ``benchInputErrorExit``.
private func inputError(_ error: any Error) -> ExitCode {
    let text = (error as? MeshError)?.message ?? String(describing: error)
    FileHandle.standardError.write(Data("meshctl: \(text)\n".utf8))
    return ExitCode(benchInputErrorExit)
}

/// `meshctl bench run SCENARIO…`: scenarios against a running mesh.
struct BenchRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run scenarios against a running mesh; writes a JSON result file and an HTML report.",
        discussion: "Scenarios: \(BenchScenario.allCases.map(\.rawValue).joined(separator: ", ")).")

    @Argument(help: "Scenarios to run, in order.")
    var scenarios: [BenchScenario]

    @OptionGroup var target: BenchTargetOptions
    @OptionGroup var options: BenchRunOptions

    func validate() throws {
        guard !scenarios.isEmpty else { throw ValidationError("name at least one scenario") }
    }

    func run() async throws {
        let resolved = try target.resolveRunning()
        let document = try await BenchSuite.measure(
            scenarios.map { SuiteEntry(scenario: $0) }, target: resolved, settings: try options.settings(), runs: options.runs)
        try await BenchSuite.finish(document, options: options, postgresURL: resolved.postgresURL)
        if document.failures != nil { throw ExitCode(1) }
    }
}

/// `meshctl bench all`: the whole suite, by default on a local mesh of its own.
struct BenchAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Run the whole suite (default: on a local mesh it starts) and write the report.",
        discussion: """
            Without --nats-url or --state-dir it starts a local mesh (nats-server, PostgreSQL, the services, \
            --workers workers, gateway rate limit off) in --mesh-dir on free ports, and stops it afterwards; its \
            PostgreSQL keeps the bench_runs history across runs (`meshctl bench history`). About 4 minutes with the \
            defaults.
            """)

    @OptionGroup var target: BenchTargetOptions
    @OptionGroup var options: BenchRunOptions

    @Option(name: .customLong("scenarios"), help: "Only these scenarios, comma-separated (default: all).")
    var only: String?

    @Option(name: .customLong("mesh-dir"), help: "State directory of the local mesh bench all starts.")
    var meshDirectory: String = ".mesh-bench"

    @Option(name: .customLong("workers"), help: "Agent workers of the local mesh.")
    var workers: Int = 2

    func validate() throws {
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be in 1...16") }
        _ = try selection()
    }

    func selection() throws -> [SuiteEntry] {
        guard let only else { return BenchSuite.all }
        var entries: [SuiteEntry] = []
        for name in only.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let scenario = BenchScenario(rawValue: name) else {
                throw ValidationError("unknown scenario '\(name)' (\(BenchScenario.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            entries += BenchSuite.all.filter { $0.scenario == scenario }
        }
        guard !entries.isEmpty else { throw ValidationError("--scenarios names none") }
        return entries
    }

    func run() async throws {
        let document = try await Self.runSuite(try selection(), target: target, options: options, meshDirectory: meshDirectory, workers: workers)
        if document.failures != nil { throw ExitCode(1) }
    }

    /// Runs `entries` against the mesh `target` names, or against a local mesh started in
    /// `meshDirectory` (and stopped afterwards), then writes, stores and prints the results.
    /// - Returns: the document.
    @discardableResult
    static func runSuite(
        _ entries: [SuiteEntry], target: BenchTargetOptions, options: BenchRunOptions, meshDirectory: String, workers: Int
    ) async throws -> BenchDocument {
        let settings = try options.settings()
        if target.namesRunningMesh {
            let resolved = try target.resolveRunning()
            let document = try await BenchSuite.measure(entries, target: resolved, settings: settings, runs: options.runs)
            try await BenchSuite.finish(document, options: options, postgresURL: resolved.postgresURL)
            return document
        }
        let state = URL(fileURLWithPath: meshDirectory).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        chmod(state, 0o755)  // PostgreSQL may run as another user and must reach its directory.
        let mesh = try LocalMesh(
            configuration: LocalMeshConfiguration(
                stateDirectory: state, natsPort: try LocalHost.freePort(), natsMonitorPort: try LocalHost.freePort(), postgresPort: try LocalHost.freePort(),
                gatewayPort: try LocalHost.freePort(), workers: workers, prefix: target.prefix, logLevel: "warning", metricsPorts: false,
                readyTimeout: .seconds(120), extraEnvironment: ["MESH_GATEWAY_RATE_LIMIT": "0"]),
            logger: Logger(label: "meshctl"))
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        defer { mesh.stop() }
        let up: LocalMeshState
        do {
            up = try await mesh.start()
        } catch {
            mesh.stop()
            throw error
        }
        let key = (try? String(contentsOfFile: LocalMeshState.keyPath(stateDirectory: state), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        let resolved = ResolvedBenchTarget(
            natsURL: up.natsURL, prefix: target.prefix, gatewayURL: up.gatewayURL, apiKey: key, postgresURL: up.postgresURL,
            processes: up.processes.map { MeshProcess(name: $0.name, pid: $0.pid) }, label: "local",
            exitedProcesses: { mesh.exitedServices().map { "\($0.name.rawValue) (\($0.id)) exited; see \($0.child.logPath)" } })
        let runs = options.runs
        let document: BenchDocument? = try await withThrowingTaskGroup(of: BenchDocument?.self) { group in
            group.addTask { try await BenchSuite.measure(entries, target: resolved, settings: settings, runs: runs) }
            group.addTask {
                for await signal in signals {
                    FileHandle.standardError.write(Data("meshctl: \(signal) received, stopping the mesh\n".utf8))
                    return nil
                }
                try await Task.sleep(for: .seconds(86_400 * 365))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let document else { throw ExitCode(130) }
        try await BenchSuite.finish(document, options: options, postgresURL: up.postgresURL)
        return document
    }
}

/// `meshctl bench check`: SLO targets against result files.
struct BenchCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Check result files against SLO targets (exit 0 pass, 1 fail, 3 bad input).",
        discussion: "Without --slo the built-in seed targets (the same as Deploy/bench/slo.yaml) apply. A target whose result is not in the files is reported as missing; it fails only with --require-all.")

    @Option(name: .customLong("slo"), help: "SLO file (YAML).")
    var slo: String?

    @Flag(name: .customLong("require-all"), help: "Fail when a target's result was not measured.")
    var requireAll = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
    var output: OutputFormat = .table

    @Argument(help: "Result files (default: the newest bench-results/*.json).")
    var results: [String] = []

    func run() async throws {
        let outcomes: [SLOOutcome]
        do {
            let file = try slo.map { path throws(MeshError) in try SLOFile.read(path: path) } ?? SLOFile.defaults
            let documents = try loadResultFiles(results)
            outcomes = SLOEvaluator.evaluate(file, results: documents.flatMap(\.results))
        } catch {
            throw inputError(error)
        }
        func bound(_ target: SLOFile.Target) -> String {
            [target.min.map { "≥ \(Self.number($0))" }, target.max.map { "≤ \(Self.number($0))" }].compactMap { $0 }.joined(separator: ", ")
        }
        switch output {
        case .json:
            printJSON(outcomes.map { outcome -> [String: Any] in
                var entry: [String: Any] = [
                    "name": outcome.target.name, "result": outcome.target.result, "metric": outcome.target.metric.rawValue, "status": outcome.status.rawValue,
                    "runs": outcome.runs,
                ]
                entry["value"] = outcome.value
                entry["min"] = outcome.target.min
                entry["max"] = outcome.target.max
                return entry
            })
        case .table:
            var rows = [["TARGET", "RESULT", "METRIC", "BOUND", "VALUE", "RUNS", "STATUS"]]
            for outcome in outcomes {
                rows.append([
                    outcome.target.name, outcome.target.result, outcome.target.metric.rawValue, bound(outcome.target), outcome.value.map(Self.number) ?? "-",
                    String(outcome.runs), outcome.status == .pass ? "PASS" : outcome.status == .fail ? "FAIL" : "missing",
                ])
            }
            say(Table.render(rows))
            let failed = outcomes.filter { $0.status == .fail }.count
            let missing = outcomes.filter { $0.status == .missing }.count
            say("\n\(outcomes.count - failed - missing) passed, \(failed) failed, \(missing) missing")
        }
        let code = SLOEvaluator.exitCode(outcomes, requireAll: requireAll)
        if code != 0 { throw ExitCode(code) }
    }

    static func number(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e12 { return String(Int64(value)) }
        return abs(value) >= 1 ? String(format: "%.2f", value) : String(format: "%.4g", value)
    }
}

/// Reads result files; with none, the newest `bench-results/*.json`.
func loadResultFiles(_ paths: [String]) throws(MeshError) -> [BenchDocument] {
    var paths = paths
    if paths.isEmpty {
        let directory = "bench-results"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasSuffix(".json") }.sorted() ?? []
        guard let newest = files.last else { throw MeshError(.notFound, "no result file given and none in \(directory)/") }
        paths = ["\(directory)/\(newest)"]
    }
    var documents: [BenchDocument] = []
    for path in paths { documents.append(try BenchDocument.read(path: path)) }
    return documents
}

/// `meshctl bench compare`: regression verdicts against a baseline.
struct BenchCompare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare runs with a baseline: regression verdicts (exit 0 ok/notice, 1 warning, 2 critical, 3 bad input).",
        discussion: """
            Medians over the runs of each side are compared per result and metric (p50, p99, throughput, error rate, \
            CPU; memory growth absolutely). Thresholds: critical latency +20 %, throughput −15 %, error rate +100 %, \
            memory growth > 50 MB/h; warning latency +10 %, throughput −5 %, error rate +50 %, CPU +10 %; notice +5 %. \
            A change whose threshold is below the runs' spread ((max − min) ÷ median) is inconclusive and does not \
            count. Without CURRENT files, the baseline's scenarios are run --runs times now against the mesh \
            (--nats-url/--state-dir, else a local mesh as `bench all` starts).
            """)

    @Option(name: .customLong("baseline"), help: "Baseline result file (repeat for more runs).")
    var baseline: [String] = []

    @Argument(help: "Current result files (runs to judge).")
    var current: [String] = []

    @OptionGroup var target: BenchTargetOptions
    @OptionGroup var options: BenchRunOptions

    @Option(name: .customLong("mesh-dir"), help: "State directory of the local mesh started when no mesh is named.")
    var meshDirectory: String = ".mesh-bench"

    @Option(name: .customLong("format"), help: "Verdicts on stdout: table|json")
    var format: OutputFormat = .table

    @Option(name: .customLong("workers"), help: "Agent workers of the local mesh started when no mesh is named.")
    var workers: Int = 2

    /// `--runs` as given (nil: 3 when runs are made now).
    var runs: Int? { CommandLine.arguments.contains { $0 == "--runs" || $0.hasPrefix("--runs=") } ? options.runs : nil }

    func validate() throws {
        guard !baseline.isEmpty else { throw ValidationError("--baseline FILE is required") }
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be in 1...16") }
    }

    func run() async throws {
        let old: [BenchDocument]
        var new: [BenchDocument] = []
        do {
            old = try loadResultFiles(baseline)
            if !current.isEmpty { new = try loadResultFiles(current) }
        } catch {
            throw inputError(error)
        }
        if new.isEmpty {
            // Run the baseline's selection now (same scenarios, result names and profiles).
            let entries = BenchSuite.entries(reproducing: old.flatMap(\.results))
            guard !entries.isEmpty else { throw inputError(MeshError(.invalidArgument, "the baseline names no known scenario")) }
            var runOptions = options
            if runs == nil { runOptions.runs = 3 }
            new = [try await BenchAll.runSuite(entries, target: target, options: runOptions, meshDirectory: meshDirectory, workers: workers)]
        }
        for failure in new.flatMap({ $0.failures ?? [] }) {
            FileHandle.standardError.write(Data("meshctl: current run of \(failure.scenario) failed (\(failure.error)); its results are missing\n".utf8))
        }
        let report = RegressionAnalyzer.compare(baseline: old.flatMap(\.results), current: new.flatMap(\.results))
        switch format {
        case .json:
            printJSON([
                "verdict": report.severity.description, "exitCode": Int(report.exitCode), "inconclusive": report.hasInconclusive, "missing": report.missing,
                "comparisons": report.comparisons.map { c -> [String: Any] in
                    [
                        "result": c.result, "metric": c.metric.rawValue, "baseline": c.baseline, "current": c.current, "worsening": c.worsening,
                        "baselineRuns": c.baselineRuns, "currentRuns": c.currentRuns, "baselineSpread": c.baselineSpread, "currentSpread": c.currentSpread,
                        "verdict": c.verdict,
                    ]
                },
            ])
        case .table:
            var rows = [["RESULT", "METRIC", "BASELINE", "CURRENT", "CHANGE", "SPREAD (BASE/CUR)", "RUNS", "VERDICT"]]
            for c in report.comparisons {
                let change = c.metric == .memoryGrowthMBPerHour
                    ? "limit 50" : String(format: "%+.1f %%", (c.metric.higherIsBetter ? -c.worsening : c.worsening) * 100)
                rows.append([
                    c.result, c.metric.rawValue, BenchCheck.number(c.baseline), BenchCheck.number(c.current), change,
                    String(format: "%.1f %% / %.1f %%", c.baselineSpread * 100, c.currentSpread * 100), "\(c.baselineRuns)/\(c.currentRuns)", c.verdict,
                ])
            }
            say(Table.render(rows))
            if !report.missing.isEmpty { say("\nnot in the current runs: \(report.missing.joined(separator: ", "))") }
            let inconclusive = report.comparisons.filter(\.inconclusive).count
            say("\nverdict: \(report.severity)\(inconclusive > 0 ? " (\(inconclusive) inconclusive: spread above the threshold; repeat with more --runs)" : "")")
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

/// `meshctl bench history`: trends from `bench_runs`.
struct BenchHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "List stored runs (PostgreSQL bench_runs) with their trend.",
        discussion: """
            PostgreSQL: --postgres-url, else MESH_POSTGRES_URL, else a running local mesh in --state-dir, else the \
            PostgreSQL cluster of `bench all`'s local mesh in --mesh-dir (started for the query and stopped again).
            """)

    @Option(name: .customLong("scenario"), help: "Only this result name or scenario.")
    var scenario: String?

    @Option(name: .customLong("limit"), help: "Newest rows to show.")
    var limit: Int = 50

    @Option(name: .customLong("postgres-url"), help: "PostgreSQL connection string.")
    var postgresURL: String?

    @Option(name: .customLong("state-dir"), help: "State directory of a running local mesh.")
    var stateDirectory: String = MeshEnvironment.string("MESH_STATE_DIR") ?? ".mesh"

    @Option(name: .customLong("mesh-dir"), help: "State directory of bench all's local mesh.")
    var meshDirectory: String = ".mesh-bench"

    @Option(name: [.customShort("o"), .customLong("output")], help: "table|json")
    var output: OutputFormat = .table

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be in 1...10000") }
    }

    func run() async throws {
        var temporary: LocalPostgres?
        defer { temporary?.stop() }
        let url: String
        if let explicit = postgresURL ?? MeshEnvironment.string("MESH_POSTGRES_URL") {
            url = explicit
        } else if let local = LocalMeshState.read(stateDirectory: stateDirectory), local.isAlive {
            url = local.postgresURL
        } else {
            let directory = URL(fileURLWithPath: meshDirectory).standardizedFileURL.path + "/postgres"
            guard FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION") else {
                throw CLIError("no PostgreSQL with bench runs: give --postgres-url (or MESH_POSTGRES_URL), run a local mesh, or run `meshctl bench all` first")
            }
            let postgres = try await LocalPostgres(directory: directory, port: try LocalHost.freePort())
            temporary = postgres
            url = postgres.connectionString(database: "mesh")
        }
        let store = BenchStore(url: url)
        defer { store.close() }
        let rows: [BenchStore.Row]
        do {
            rows = try await store.history(name: scenario, limit: limit)
        } catch {
            throw CLIError("cannot read bench_runs: \(error)")
        }
        let formatter = ISO8601DateFormatter()
        switch output {
        case .json:
            printJSON(rows.map { row -> [String: Any] in
                [
                    "startedAt": formatter.string(from: row.startedAt), "gitRevision": row.revision, "name": row.name, "profile": row.profile,
                    "throughput": row.throughput, "p50Micros": row.p50Micros, "p99Micros": row.p99Micros, "errors": row.errors, "operations": row.operations,
                ]
            })
        case .table:
            guard !rows.isEmpty else {
                say("no stored runs\(scenario.map { " of \($0)" } ?? "")")
                return
            }
            var table = [["RESULT", "STARTED", "REVISION", "PROFILE", "OPS/S", "Δ OPS/S", "P50", "P99", "Δ P99", "ERRORS"]]
            var previous: [String: BenchStore.Row] = [:]
            for row in rows {
                func delta(_ now: Double, _ before: Double?) -> String {
                    guard let before, before > 0 else { return "-" }
                    return String(format: "%+.1f %%", (now - before) / before * 100)
                }
                let last = previous[row.name]
                table.append([
                    row.name, formatter.string(from: row.startedAt), String(row.revision.prefix(12)), row.profile, String(format: "%.0f", row.throughput),
                    delta(row.throughput, last?.throughput), HTMLReport.micros(row.p50Micros), HTMLReport.micros(row.p99Micros),
                    delta(row.p99Micros, last?.p99Micros), "\(row.errors)/\(row.operations)",
                ])
                previous[row.name] = row
            }
            say(Table.render(table))
        }
    }
}

/// `meshctl bench report`: the HTML report and summary of existing result files.
struct BenchReport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Render result files (merged) as an HTML report and print their summary table.")

    @Argument(help: "Result files.")
    var files: [String]

    @Option(name: .customLong("html"), help: "Where to write the HTML report.")
    var html: String

    func run() async throws {
        let documents: [BenchDocument]
        do { documents = try loadResultFiles(files) } catch { throw inputError(error) }
        guard var merged = documents.first else { throw inputError(MeshError(.invalidArgument, "no result file")) }
        merged.results = documents.flatMap(\.results)
        merged.ratios = BenchRatio.standard(merged.results)
        try Data(HTMLReport.render(merged).utf8).write(to: URL(fileURLWithPath: html), options: .atomic)
        say(BenchSuite.summary(merged))
    }
}
