/// How bad a change is.
public enum Severity: Int, Sendable, Comparable, CustomStringConvertible {
    case ok = 0, notice, warning, critical

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .ok: "ok"
        case .notice: "notice"
        case .warning: "warning"
        case .critical: "critical"
        }
    }
}

/// Relative worsening at which each severity starts (a change exactly at a threshold has
/// that severity). `nil`: the metric never reaches that severity.
public struct SeverityThresholds: Sendable, Hashable {
    public var notice: Double?
    public var warning: Double?
    public var critical: Double?

    public init(notice: Double?, warning: Double?, critical: Double?) {
        self.notice = notice
        self.warning = warning
        self.critical = critical
    }

    /// Changes within this of a threshold count as at it (relative changes computed in
    /// floating point: 105 vs 100 must be exactly +5 %).
    public static let tolerance = 1e-9

    /// The severity of a relative worsening (0.2 = 20 % worse).
    public func severity(of worsening: Double) -> Severity {
        let value = worsening + Self.tolerance
        if let critical, value >= critical { return .critical }
        if let warning, value >= warning { return .warning }
        if let notice, value >= notice { return .notice }
        return .ok
    }

    /// The threshold of `severity` (nil for `.ok` or when the metric has none).
    public func threshold(of severity: Severity) -> Double? {
        switch severity {
        case .ok: nil
        case .notice: notice
        case .warning: warning
        case .critical: critical
        }
    }
}

/// The regression thresholds. Defaults: critical — latency +20 %, throughput −15 %, error
/// rate +100 %, memory growth above 50 MB/h; warning — latency +10 %, throughput −5 %,
/// error rate +50 %, CPU +10 %; notice — +5 % (−5 % throughput, which is already a warning).
public struct RegressionThresholds: Sendable, Hashable {
    public var latency = SeverityThresholds(notice: 0.05, warning: 0.10, critical: 0.20)
    public var throughput = SeverityThresholds(notice: 0.05, warning: 0.05, critical: 0.15)
    public var errorRate = SeverityThresholds(notice: 0.05, warning: 0.50, critical: 1.00)
    public var cpu = SeverityThresholds(notice: 0.05, warning: 0.10, critical: nil)
    /// Memory growth (MB per hour, absolute, of the current run) from which it is critical.
    public var memoryGrowthCriticalMBPerHour: Double = 50
    /// Memory growth is judged only on windows at least this long (seconds): a short run's
    /// RSS change extrapolated to an hour is noise.
    public var memoryMinimumWindowSeconds: Double = 60
    /// Error rates below this (0.1 %) on both sides count as equal; above, the relative
    /// change is taken against at least this much (so 0 → 0.2 % is +100 %, not infinite).
    public var errorRateFloor: Double = 0.001

    public init() {}

    func thresholds(for metric: BenchMetric) -> SeverityThresholds {
        switch metric {
        case .throughput: throughput
        case .errorRate: errorRate
        case .cpuPercent: cpu
        default: latency
        }
    }
}

/// One metric of one result, baseline against current.
public struct MetricComparison: Sendable, Hashable {
    public var result: String
    public var metric: BenchMetric
    /// Medians over the runs.
    public var baseline: Double
    public var current: Double
    public var baselineRuns: Int
    public var currentRuns: Int
    /// `(max − min) ÷ median` over each side's runs.
    public var baselineSpread: Double
    public var currentSpread: Double
    /// Relative change in the bad direction (latency up, throughput down): 0.2 = 20 % worse;
    /// negative = better.
    public var worsening: Double
    /// The severity the change reaches.
    public var severity: Severity
    /// The runs' spread is larger than the threshold the change crossed: the change cannot
    /// be told from noise, so it does not count towards the exit status.
    public var inconclusive: Bool

    /// What to print: ok, notice, warning, critical, or inconclusive (<severity>).
    public var verdict: String { inconclusive ? "inconclusive (\(severity))" : severity.description }
    /// The severity that counts for the exit status.
    public var effectiveSeverity: Severity { inconclusive ? .ok : severity }
}

/// The comparison of a run (or runs) with a baseline.
public struct RegressionReport: Sendable, Hashable {
    public var comparisons: [MetricComparison]
    /// Result names in the baseline with no current counterpart.
    public var missing: [String]

    /// The worst conclusive severity.
    public var severity: Severity { comparisons.map(\.effectiveSeverity).max() ?? .ok }
    /// Whether any crossed threshold was drowned by noise.
    public var hasInconclusive: Bool { comparisons.contains { $0.inconclusive } }

    /// The exit status of `meshctl bench compare`: 2 critical, 1 warning, 0 otherwise
    /// (notices and inconclusive changes included).
    public var exitCode: Int32 {
        switch severity {
        case .critical: 2
        case .warning: 1
        case .ok, .notice: 0
        }
    }
}

/// The regression verdict (pure): medians of repeated runs compared per result and metric.
///
/// ```swift
/// let report = RegressionAnalyzer.compare(baseline: old.results, current: new.results)
/// exit(report.exitCode)
/// ```
public enum RegressionAnalyzer {
    /// Metrics compared relative to the baseline.
    public static let relativeMetrics: [BenchMetric] = [.p50, .p99, .throughput, .errorRate, .cpuPercent]

    /// Compares every result name present in `baseline` with the runs of the same name in
    /// `current`.
    public static func compare(baseline: [BenchResult], current: [BenchResult], thresholds: RegressionThresholds = RegressionThresholds())
        -> RegressionReport
    {
        var order: [String] = []
        for result in baseline where !order.contains(result.name) { order.append(result.name) }
        var comparisons: [MetricComparison] = []
        var missing: [String] = []
        for name in order {
            let old = baseline.filter { $0.name == name }
            let new = current.filter { $0.name == name }
            guard !new.isEmpty else {
                missing.append(name)
                continue
            }
            for metric in relativeMetrics {
                if metric == .cpuPercent && !(old.allSatisfy(\.resources.sampled) && new.allSatisfy(\.resources.sampled)) { continue }
                if (metric == .p50 || metric == .p99) && (old + new).contains(where: { $0.latency.count == 0 }) { continue }
                if let comparison = compareMetric(
                    name, metric, baseline: old.map { $0.value(of: metric) }, current: new.map { $0.value(of: metric) }, thresholds: thresholds)
                {
                    comparisons.append(comparison)
                }
            }
            // Memory growth: absolute, on the current runs, long windows only.
            let judged = new.filter { $0.resources.sampled && $0.durationSeconds >= thresholds.memoryMinimumWindowSeconds }
            if let growth = Statistics.median(judged.map { $0.value(of: .memoryGrowthMBPerHour) }) {
                let limit = thresholds.memoryGrowthCriticalMBPerHour
                comparisons.append(
                    MetricComparison(
                        result: name, metric: .memoryGrowthMBPerHour, baseline: limit, current: growth, baselineRuns: 0, currentRuns: judged.count,
                        baselineSpread: 0, currentSpread: Statistics.relativeSpread(judged.map { $0.value(of: .memoryGrowthMBPerHour) }),
                        worsening: limit > 0 ? (growth - limit) / limit : 0, severity: growth > limit ? .critical : .ok, inconclusive: false))
            }
        }
        return RegressionReport(comparisons: comparisons, missing: missing)
    }

    /// Compares one metric's run values; nil when the baseline median is 0 for a metric
    /// measured relative to it (nothing to compare with).
    public static func compareMetric(
        _ result: String, _ metric: BenchMetric, baseline: [Double], current: [Double], thresholds: RegressionThresholds = RegressionThresholds()
    ) -> MetricComparison? {
        guard let old = Statistics.median(baseline), let new = Statistics.median(current) else { return nil }
        let worsening: Double
        if metric == .errorRate {
            let floor = thresholds.errorRateFloor
            worsening = Swift.max(old, new) < floor ? 0 : (new - old) / Swift.max(old, floor)
        } else {
            guard old > 0 else { return nil }
            worsening = metric.higherIsBetter ? (old - new) / old : (new - old) / old
        }
        let rules = thresholds.thresholds(for: metric)
        let severity = rules.severity(of: worsening)
        let oldSpread = Statistics.relativeSpread(baseline)
        let newSpread = Statistics.relativeSpread(current)
        let noise = Swift.max(oldSpread, newSpread)
        let inconclusive = severity > .ok && noise > (rules.threshold(of: severity) ?? .infinity) + SeverityThresholds.tolerance
        return MetricComparison(
            result: result, metric: metric, baseline: old, current: new, baselineRuns: baseline.count, currentRuns: current.count,
            baselineSpread: oldSpread, currentSpread: newSpread, worsening: worsening, severity: severity, inconclusive: inconclusive)
    }
}
