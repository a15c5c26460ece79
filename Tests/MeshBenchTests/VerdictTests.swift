import Foundation
import MeshBench
import MeshCore
import Testing

@Suite struct SLOTests {
    @Test func theShippedFileIsTheBuiltInDefault() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = try SLOFile.read(path: root.appendingPathComponent("Deploy/bench/slo.yaml").path)
        #expect(shipped == SLOFile.defaults)
        let actions = SLOFile.defaults.targets.filter { $0.result == "actions" }
        #expect(actions.contains { $0.metric == .p99 && $0.max == 5 } && actions.contains { $0.metric == .throughput && $0.min == 9_900 })  // 99 % of the offered 10 000/s
        #expect(SLOFile.defaults.targets.contains { $0.result == "registry-lookup/cache" && $0.max == 0.1 })
        #expect(SLOFile.defaults.targets.contains { $0.result == "agent-create" && $0.min == 1_000 })
    }

    @Test(arguments: [
        ("targets: [", "not valid YAML"), ("- 1", "expected a mapping"), ("version: 2\ntargets: []", "'version: 1'"),
        ("version: 1\ntargets: []", "non-empty"), ("version: 1\ntargets:\n  - result: a\n    metric: p99_ms", "give 'min' or 'max'"),
        ("version: 1\ntargets:\n  - result: a\n    metric: p42\n    max: 1", "unknown metric"),
        ("version: 1\ntargets:\n  - result: a\n    metric: p99_ms\n    max: fast", "must be a number"),
        ("version: 1\ntargets:\n  - result: a\n    metric: p99_ms\n    min: 5\n    max: 1", "above"),
        ("version: 1\ntargets:\n  - result: a\n    metric: p99_ms\n    maximum: 1", "unknown key"),
        ("version: 1\ntargets:\n  - metric: p99_ms\n    max: 1", "'result'"), ("version: 1\ntargets: [1]\nextra: 2", "unknown key"),
    ])
    func badFilesSayWhatIsWrong(text: String, fragment: String) {
        do {
            _ = try SLOFile(yaml: text, source: "slo.yaml")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains(fragment), "\(error)")
        }
    }

    @Test func targetsPassFailOrAreMissingOnTheMedianOfTheRuns() throws {
        let slo = try SLOFile(yaml: """
            version: 1
            targets:
              - {result: actions, metric: p99_ms, max: 2}
              - {result: actions, metric: throughput, min: 1000, max: 5000}
              - {result: actions, metric: throughput, min: 1001}
              - {result: tasks, metric: throughput, min: 1}
            """)
        // Runs with p99 1.5, 2.0 and 9 ms: median 2.0 passes `max: 2` (bounds are inclusive).
        let runs = [
            ResultFileTests.sample(throughput: 1_000, run: 1, p99Nanos: 1_500_000), ResultFileTests.sample(throughput: 1_000, run: 2, p99Nanos: 2_000_000),
            ResultFileTests.sample(throughput: 1_000, run: 3, p99Nanos: 9_000_000),
        ]
        let outcomes = SLOEvaluator.evaluate(slo, results: runs)
        #expect(outcomes.map(\.status) == [.pass, .pass, .fail, .missing])
        #expect(outcomes[0].value == 2 && outcomes[0].runs == 3)
        #expect(SLOEvaluator.exitCode(outcomes, requireAll: false) == 1)
        let passing = SLOEvaluator.evaluate(SLOFile(targets: Array(slo.targets.prefix(2)) + [slo.targets[3]]), results: runs)
        #expect(SLOEvaluator.exitCode(passing, requireAll: false) == 0)
        #expect(SLOEvaluator.exitCode(passing, requireAll: true) == 1)
    }
}

@Suite struct RegressionVerdictTests {
    func verdict(_ metric: BenchMetric, baseline: Double, current: Double) -> MetricComparison? {
        RegressionAnalyzer.compareMetric("r", metric, baseline: [baseline], current: [current])
    }

    @Test(arguments: [
        (104.99, Severity.ok), (105, .notice), (109.99, .notice), (110, .warning), (119.99, .warning), (120, .critical), (300, .critical), (50, .ok),
    ])
    func latencyEdges(current: Double, expected: Severity) {
        for metric in [BenchMetric.p50, .p99] { #expect(verdict(metric, baseline: 100, current: current)?.severity == expected, "\(metric) \(current)") }
    }

    @Test(arguments: [(95.01, Severity.ok), (95, .warning), (85.01, .warning), (85, .critical), (10, .critical), (150, .ok)])
    func throughputEdges(current: Double, expected: Severity) {
        #expect(verdict(.throughput, baseline: 100, current: current)?.severity == expected)
    }

    @Test(arguments: [
        (0.0104999, Severity.ok), (0.0105, .notice), (0.0149999, .notice), (0.015, .warning), (0.0199999, .warning), (0.02, .critical),
    ])
    func errorRateEdges(current: Double, expected: Severity) {
        #expect(verdict(.errorRate, baseline: 0.01, current: current)?.severity == expected)
    }

    @Test func errorRatesBelowTheFloorAreEqualAndZeroBaselinesUseTheFloor() {
        #expect(verdict(.errorRate, baseline: 0, current: 0.0009)?.severity == .ok)
        #expect(verdict(.errorRate, baseline: 0.0005, current: 0.0009)?.severity == .ok)
        // Against the 0.1 % floor: 0 → 0.12 % is +120 %.
        #expect(verdict(.errorRate, baseline: 0, current: 0.0012)?.severity == .critical)
        #expect(verdict(.errorRate, baseline: 0.0005, current: 0.00105)?.severity == .warning)  // +55 % of the floor
        #expect(verdict(.errorRate, baseline: 0.002, current: 0.0029)?.severity == .notice)
    }

    @Test(arguments: [(104.99, Severity.ok), (105, .notice), (109.99, .notice), (110, .warning), (500, .warning)])
    func cpuEdgesHaveNoCriticalLevel(current: Double, expected: Severity) {
        #expect(verdict(.cpuPercent, baseline: 100, current: current)?.severity == expected)
    }

    @Test func aZeroBaselineHasNothingToCompareWith() {
        #expect(verdict(.throughput, baseline: 0, current: 10) == nil)
        #expect(verdict(.p99, baseline: 0, current: 10) == nil)
    }

    @Test func spreadAboveTheCrossedThresholdIsInconclusive() {
        // Medians 100 → 120 (critical +20 %); baseline runs spread (110 − 90) / 100 = 20 %: not above.
        let even = RegressionAnalyzer.compareMetric("r", .p99, baseline: [90, 100, 110], current: [120, 120, 120])
        #expect(even?.severity == .critical && even?.inconclusive == false && even?.effectiveSeverity == .critical)
        // Spread 21 % > 20 %: the change cannot be told from noise.
        let noisy = RegressionAnalyzer.compareMetric("r", .p99, baseline: [90, 100, 111], current: [120, 120, 120])
        #expect(noisy?.severity == .critical && noisy?.inconclusive == true && noisy?.effectiveSeverity == .ok)
        #expect(noisy?.verdict == "inconclusive (critical)")
        // Current-side spread counts too; a warning (+10 %) with 11 % spread is inconclusive.
        let warning = RegressionAnalyzer.compareMetric("r", .p99, baseline: [100, 100], current: [105, 110, 116.6])
        #expect(warning?.severity == .warning && warning?.inconclusive == true)
        // Noise never makes an unchanged metric inconclusive.
        let calm = RegressionAnalyzer.compareMetric("r", .p99, baseline: [50, 100, 150], current: [100])
        #expect(calm?.severity == .ok && calm?.inconclusive == false)
        #expect(calm?.baselineSpread == 1.0 && calm?.baselineRuns == 3)
    }

    @Test func mediansAreCompared() {
        // One outlier run does not move the median.
        let comparison = RegressionAnalyzer.compareMetric("r", .throughput, baseline: [1_000, 1_000, 1_000], current: [1_000, 400, 1_000])
        #expect(comparison?.current == 1_000 && comparison?.severity == .ok)
        #expect(Statistics.median([1, 2, 3, 10]) == 2.5 && Statistics.median([]) == nil)
    }

    @Test func memoryGrowthIsCriticalAbove50MBPerHourOnLongWindows() {
        func run(growthMBPerHour: Double, seconds: Double) -> BenchResult {
            var result = ResultFileTests.sample()
            result.durationSeconds = seconds
            let delta = Int64(growthMBPerHour * 1_048_576 * seconds / 3_600)
            result.resources = ResourceUsage(
                processes: [ProcessUsage(name: "w", pid: 1, cpuPercent: 55, rssBytes: 1, rssPeakBytes: 1, rssDeltaBytes: delta)], windowSeconds: seconds)
            return result
        }
        let base = [run(growthMBPerHour: 0, seconds: 3_600)]
        let at = RegressionAnalyzer.compare(baseline: base, current: [run(growthMBPerHour: 50, seconds: 3_600)])
        #expect(at.comparisons.first { $0.metric == .memoryGrowthMBPerHour }?.severity == .ok && at.exitCode == 0)
        let above = RegressionAnalyzer.compare(baseline: base, current: [run(growthMBPerHour: 51, seconds: 3_600)])
        #expect(above.comparisons.first { $0.metric == .memoryGrowthMBPerHour }?.severity == .critical && above.exitCode == 2)
        // A 10 s window's growth is not extrapolated into a verdict.
        let short = RegressionAnalyzer.compare(baseline: base, current: [run(growthMBPerHour: 5_000, seconds: 10)])
        #expect(!short.comparisons.contains { $0.metric == .memoryGrowthMBPerHour } && short.exitCode == 0)
    }

    @Test func exitCodesFollowTheWorstConclusiveSeverity() {
        let base = [ResultFileTests.sample(throughput: 1_000, p99Nanos: 2_000_000), ResultFileTests.sample(name: "tasks", throughput: 1_000)]
        #expect(RegressionAnalyzer.compare(baseline: base, current: base).exitCode == 0)
        #expect(RegressionAnalyzer.compare(baseline: base, current: base).severity == .ok)
        let slower = [ResultFileTests.sample(throughput: 940), ResultFileTests.sample(name: "tasks", throughput: 1_000)]
        let warning = RegressionAnalyzer.compare(baseline: base, current: slower)
        #expect(warning.severity == .warning && warning.exitCode == 1)
        let collapsed = [ResultFileTests.sample(throughput: 500)]
        let critical = RegressionAnalyzer.compare(baseline: base, current: collapsed)
        #expect(critical.exitCode == 2 && critical.missing == ["tasks"])
        let notice = RegressionAnalyzer.compare(baseline: base, current: [ResultFileTests.sample(throughput: 1_000, p99Nanos: 2_120_000)] + [base[1]])
        #expect(notice.severity == .notice && notice.exitCode == 0)
    }
}

@Suite struct RatioTests {
    /// A result whose every latency sample is `latencyMicros` and whose throughput is `rate`.
    static func result(_ name: String, profile: String, rate: Double, latencyMicros: UInt64) -> BenchResult {
        var histogram = LogLinearHistogram()
        for _ in 0..<100 { histogram.record(latencyMicros * 1_000) }
        return BenchResult(
            name: name, scenario: "s", parameters: [:], profile: profile, startedAt: Date(), warmupSeconds: 0, durationSeconds: 10,
            operations: Int(rate * 10), errors: 0, histogram: histogram, timeline: [])
    }

    @Test func eachRatioComparesRunsOfTheRightProfile() throws {
        let constant = LoadProfile.constant(rate: Double(BenchRatio.constantActionRate)).description
        let results = [
            Self.result("nats-raw/request-reply", profile: "max:256", rate: 100_000, latencyMicros: 2_000),
            Self.result("nats-raw/request-reply-1", profile: "max:1", rate: 5_000, latencyMicros: 200),
            Self.result("nats-raw/request-reply-10k", profile: constant, rate: 10_000, latencyMicros: 800),
            Self.result("actions", profile: constant, rate: 10_000, latencyMicros: 1_600),
            Self.result("registry-lookup/nats", profile: "max:1", rate: 4_000, latencyMicros: 300),
        ]
        func ratio(_ prefix: String, in results: [BenchResult]) -> BenchRatio? {
            BenchRatio.standard(results).first { $0.name.hasPrefix(prefix) }
        }
        // A constant-rate run is no throughput figure: without a closed-loop run there is no ratio.
        #expect(ratio("actions ÷ raw cnats request/reply (throughput)", in: results) == nil)
        let paced = try #require(ratio("actions ÷ raw cnats request/reply, both at a constant", in: results))
        #expect(paced.denominator == "nats-raw/request-reply-10k" && paced.metric == .p99 && abs(paced.value - 2) < 0.1)
        let registry = try #require(ratio("registry get", in: results))
        #expect(abs(registry.value - 1.5) < 0.1)

        let withMax = results + [Self.result("actions/max", profile: "max:256", rate: 60_000, latencyMicros: 4_000)]
        #expect(abs((ratio("actions ÷ raw cnats request/reply (throughput)", in: withMax)?.value ?? 0) - 0.6) < 0.001)
        // An `actions` run at another rate has no latency reference.
        let other = results.map { $0.name == "actions" ? Self.result("actions", profile: "constant:20000", rate: 20_000, latencyMicros: 1_600) : $0 }
        #expect(ratio("actions ÷ raw cnats request/reply, both at a constant", in: other) == nil)
    }
}
