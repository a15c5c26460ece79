import Foundation
public import MeshCore
import Yams

/// Service-level objectives for benchmark results, read from YAML:
///
/// ```yaml
/// version: 1
/// targets:
///   - name: actions p99
///     result: actions          # a result name: scenario or scenario/variant
///     metric: p99_ms           # see BenchMetric
///     max: 5                   # pass when value <= max
///   - result: actions
///     metric: throughput
///     min: 10000               # pass when value >= min
/// ```
///
/// A target with both `min` and `max` needs both. When a document holds several runs of a
/// result, the median of the metric over the runs is checked.
public struct SLOFile: Sendable, Hashable {
    public struct Target: Sendable, Hashable {
        public var name: String
        public var result: String
        public var metric: BenchMetric
        public var min: Double?
        public var max: Double?

        public init(name: String, result: String, metric: BenchMetric, min: Double? = nil, max: Double? = nil) {
            self.name = name
            self.result = result
            self.metric = metric
            self.min = min
            self.max = max
        }
    }

    /// Largest SLO file accepted, bytes.
    public static let maxFileBytes = 1 << 20
    public var targets: [Target]

    public init(targets: [Target]) { self.targets = targets }

    /// Parses the YAML form.
    /// - Throws: ``MeshError`` `invalid_argument` naming the bad entry (not YAML, unknown
    ///   key, unknown metric, no bound, min above max, …).
    public init(yaml text: String, source: String = "SLO file") throws(MeshError) {
        guard text.utf8.count <= Self.maxFileBytes else { throw MeshError(.tooLarge, "\(source): larger than 1 MiB") }
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw MeshError(.invalidArgument, "\(source) is not valid YAML: \(error)")
        }
        guard let top = root as? [String: Any] else { throw MeshError(.invalidArgument, "\(source): expected a mapping with 'version' and 'targets'") }
        for key in top.keys where !["version", "targets"].contains(key) {
            throw MeshError(.invalidArgument, "\(source): unknown key '\(key)'")
        }
        guard let version = top["version"] as? Int, version == 1 else { throw MeshError(.invalidArgument, "\(source): 'version: 1' is required") }
        guard let entries = top["targets"] as? [Any], !entries.isEmpty else { throw MeshError(.invalidArgument, "\(source): 'targets' must be a non-empty list") }
        var targets: [Target] = []
        for (index, entry) in entries.enumerated() {
            let at = "\(source): target \(index + 1)"
            guard let map = entry as? [String: Any] else { throw MeshError(.invalidArgument, "\(at): expected a mapping") }
            for key in map.keys where !["name", "result", "metric", "min", "max"].contains(key) {
                throw MeshError(.invalidArgument, "\(at): unknown key '\(key)'")
            }
            guard let result = map["result"] as? String, !result.isEmpty else { throw MeshError(.invalidArgument, "\(at): 'result' (a result name) is required") }
            guard let metricName = map["metric"] as? String else { throw MeshError(.invalidArgument, "\(at): 'metric' is required") }
            guard let metric = BenchMetric(rawValue: metricName) else {
                throw MeshError(.invalidArgument, "\(at): unknown metric '\(metricName)' (\(BenchMetric.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            func bound(_ key: String) throws(MeshError) -> Double? {
                guard let raw = map[key] else { return nil }
                let value: Double? = (raw as? Double) ?? (raw as? Int).map(Double.init)
                guard let value, value.isFinite else { throw MeshError(.invalidArgument, "\(at): '\(key)' must be a number") }
                return value
            }
            let low = try bound("min")
            let high = try bound("max")
            guard low != nil || high != nil else { throw MeshError(.invalidArgument, "\(at): give 'min' or 'max'") }
            if let low, let high, low > high { throw MeshError(.invalidArgument, "\(at): 'min' is above 'max'") }
            let name = (map["name"] as? String) ?? "\(result) \(metric.rawValue)"
            targets.append(Target(name: name, result: result, metric: metric, min: low, max: high))
        }
        self.targets = targets
    }

    /// Reads an SLO file.
    /// - Throws: ``MeshError`` `not_found` when unreadable, else as ``init(yaml:source:)``.
    public static func read(path: String) throws(MeshError) -> SLOFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw MeshError(.notFound, "cannot read \(path)") }
        guard let text = String(data: data, encoding: .utf8) else { throw MeshError(.invalidArgument, "\(path) is not UTF-8 text") }
        return try SLOFile(yaml: text, source: path)
    }
}

/// The outcome of one SLO target against a document.
public struct SLOOutcome: Sendable, Hashable {
    public enum Status: String, Sendable {
        /// Within its bounds.
        case pass
        /// Outside a bound.
        case fail
        /// The document has no result of that name.
        case missing
    }

    public var target: SLOFile.Target
    public var status: Status
    /// The median of the metric over the runs (nil when missing).
    public var value: Double?
    public var runs: Int
}

/// Evaluates SLO targets (pure).
public enum SLOEvaluator {
    /// Checks every target against `results`.
    public static func evaluate(_ slo: SLOFile, results: [BenchResult]) -> [SLOOutcome] {
        slo.targets.map { target in
            let values = results.filter { $0.name == target.result }.map { $0.value(of: target.metric) }
            guard let value = Statistics.median(values) else {
                return SLOOutcome(target: target, status: .missing, value: nil, runs: 0)
            }
            var pass = true
            if let low = target.min, value < low { pass = false }
            if let high = target.max, value > high { pass = false }
            return SLOOutcome(target: target, status: pass ? .pass : .fail, value: value, runs: values.count)
        }
    }

    /// The exit status of `meshctl bench check`: 0 all measured targets pass (and, with
    /// `requireAll`, none is missing), 1 otherwise.
    public static func exitCode(_ outcomes: [SLOOutcome], requireAll: Bool) -> Int32 {
        if outcomes.contains(where: { $0.status == .fail }) { return 1 }
        if requireAll && outcomes.contains(where: { $0.status == .missing }) { return 1 }
        return 0
    }
}

/// Small statistics over run values.
public enum Statistics {
    /// The median (mean of the two middle values for an even count); nil when empty.
    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The relative spread `(max − min) ÷ median` (0 for fewer than two values or a zero median).
    public static func relativeSpread(_ values: [Double]) -> Double {
        guard values.count >= 2, let median = median(values), median != 0, let low = values.min(), let high = values.max() else { return 0 }
        return (high - low) / abs(median)
    }
}

extension SLOFile {
    /// The seed targets, the same as `Deploy/bench/slo.yaml` (a test keeps them equal):
    /// used by `meshctl bench check` without `--slo`.
    public static let defaultYAML = """
        version: 1
        targets:
          - name: actions p99 under 5 ms at 10 000/s
            result: actions
            metric: p99_ms
            max: 5
          - name: actions sustain 10 000/s (99 % of the offered rate completed in the window)
            result: actions
            metric: throughput
            min: 9900
          - name: actions error rate under 0.1 %
            result: actions
            metric: error_rate
            max: 0.001
          - name: registry lookup from the client cache under 0.1 ms (p99)
            result: registry-lookup/cache
            metric: p99_ms
            max: 0.1
          - name: registry lookup over NATS p99 under 1 ms
            result: registry-lookup/nats
            metric: p99_ms
            max: 1
          - name: agent creation at least 1 000/s
            result: agent-create
            metric: throughput
            min: 1000
          - name: created agents running at least 1 000/s end to end
            result: agent-create/running
            metric: throughput
            min: 1000
          - name: events to 1 subscriber at least 10 000/s
            result: events/1
            metric: throughput
            min: 10000
          - name: events to 100 subscribers at least 1 000/s (100 000 deliveries/s)
            result: events/100
            metric: throughput
            min: 1000
          - name: events to 1 000 subscribers at least 100/s (100 000 deliveries/s)
            result: events/1000
            metric: throughput
            min: 100
          - name: durable tasks at least 10 000/s end to end
            result: tasks
            metric: throughput
            min: 10000
          - name: durable tasks error rate under 0.1 %
            result: tasks
            metric: error_rate
            max: 0.001
          - name: lifecycle cycles without errors
            result: lifecycle
            metric: error_rate
            max: 0.001
          - name: gateway actions at least 10 000/s over HTTP
            result: gateway-http/action
            metric: throughput
            min: 10000
          - name: gateway /health at least 30 000/s
            result: gateway-http/health
            metric: throughput
            min: 30000
          - name: failover recovery p99 under 1 s
            result: failover
            metric: p99_ms
            max: 1000
        """

    /// The parsed seed targets.
    public static var defaults: SLOFile {
        // The constant is checked by the unit tests; a parse failure is a programming error.
        try! SLOFile(yaml: defaultYAML, source: "built-in SLO targets")
    }
}
