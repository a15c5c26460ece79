import Foundation
public import MeshCore
import Yams

/// How bad a firing alert is.
public enum AlertSeverity: String, Sendable, Hashable, CaseIterable {
    case info, warning, critical
}

/// How a rule's value is compared with its threshold.
public enum AlertComparison: String, Sendable, Hashable, CaseIterable {
    case greater = ">"
    case greaterOrEqual = ">="
    case less = "<"
    case lessOrEqual = "<="

    /// Whether `value` breaches `threshold`.
    public func holds(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .greater: value > threshold
        case .greaterOrEqual: value >= threshold
        case .less: value < threshold
        case .lessOrEqual: value <= threshold
        }
    }
}

/// What a rule measures, evaluated per group over the rule's window.
public indirect enum AlertExpression: Sendable, Hashable {
    /// Per-second increase of counters (or of cumulative gauges such as CPU seconds).
    case rate(Selector)
    /// Latest gauge values (summed within a group).
    case gauge(Selector)
    /// A quantile (0...1) of the histograms' observations in the window, merged bucket-wise,
    /// in the histogram's unit.
    case quantile(Selector, Double)
    /// Numerator divided by denominator, group by group (no value where the denominator is
    /// 0 or missing).
    case ratio(AlertExpression, AlertExpression)
}

/// One alert rule: an expression evaluated per group, a threshold and a for-duration.
///
/// ```swift
/// let rule = AlertRule(name: "cpu_high", severity: .critical, summary: "CPU above 80 %",
///     expression: .rate(Selector(metric: "mesh_process_cpu_seconds")), scale: 100,
///     grouping: .instance, comparison: .greater, threshold: 80, forMs: 60_000, windowMs: 30_000)
/// ```
public struct AlertRule: Sendable, Hashable {
    /// The rule's name: an id token, the last token of its event subject `<prefix>.evt.alert.<name>`.
    public var name: String
    public var severity: AlertSeverity
    /// One line for people.
    public var summary: String
    public var expression: AlertExpression
    /// Multiplies the expression's value before the comparison (100 for percentages).
    public var scale: Double
    public var grouping: Grouping
    public var comparison: AlertComparison
    public var threshold: Double
    /// How long the condition must hold before the alert fires (0: at once).
    public var forMs: Int64
    /// Window of rates and quantiles.
    public var windowMs: Int64

    public init(
        name: String, severity: AlertSeverity, summary: String, expression: AlertExpression, scale: Double = 1,
        grouping: Grouping, comparison: AlertComparison, threshold: Double, forMs: Int64, windowMs: Int64 = 60_000
    ) {
        self.name = name
        self.severity = severity
        self.summary = summary
        self.expression = expression
        self.scale = scale
        self.grouping = grouping
        self.comparison = comparison
        self.threshold = threshold
        self.forMs = forMs
        self.windowMs = windowMs
    }
}

/// The built-in rules and the YAML rules file.
///
/// File format (every key but `expr`'s own is optional except `name`, `expr`, `threshold`):
///
/// ```yaml
/// defaults: true            # keep the built-in rules (a file rule of the same name replaces one)
/// rules:
///   - name: action_latency_p99          # [a-z0-9][a-z0-9_-]{0,62}
///     severity: warning                  # info | warning | critical (default warning)
///     summary: Action p99 above 5 ms
///     expr:
///       type: quantile                   # rate | gauge | quantile | ratio
///       metric: mesh_action_duration
///       quantile: 0.99                   # quantile only
///       labels: {outcome: ok}            # optional equality matchers
///       service: mesh-agent-worker       # optional
///     # ratio: expr: {type: ratio, numerator: {…}, denominator: {…}}
///     scale: 1                           # multiplies the value (100 for percent)
///     by: cluster                        # cluster | service | instance | series
///     op: ">"                            # > >= < <=
///     threshold: 5000000                 # in the metric's unit (ns here) after scale
///     for: 5m                            # ms, s, m, h; 0s fires at once
///     window: 1m                         # rate and quantile window
/// ```
public enum AlertRuleSet {
    /// Most rules a file may define.
    public static let maxRules = 200
    /// Largest rules file read.
    public static let maxFileBytes = 256 * 1024

    /// The built-in rules (the mesh's defaults):
    ///
    /// | name | condition | for | severity |
    /// |---|---|---|---|
    /// | `action_latency_p99` | cluster p99 of `mesh_action_duration` over 1 m > 5 ms | 5 m | warning |
    /// | `error_rate` | failed actions / all actions over 1 m > 5 % | 2 m | critical |
    /// | `cpu_high` | a process's CPU (rate of `mesh_process_cpu_seconds`, % of one core) over 30 s > 80 % | 1 m | critical |
    /// | `memory_high` | a process's RSS / `mesh_process_memory_limit_bytes` > 85 % | 30 s | critical |
    /// | `task_consumer_at_max_ack_pending` | a shard consumer's ack-pending ≥ its MaxAckPending | 1 m | warning |
    /// | `node_down` | an agent worker sends no snapshot (`mesh_instance_up` 0) | 10 s | critical |
    public static let defaults: [AlertRule] = [
        AlertRule(
            name: "action_latency_p99", severity: .warning, summary: "Action p99 latency above 5 ms",
            expression: .quantile(Selector(metric: "mesh_action_duration"), 0.99), grouping: .cluster, comparison: .greater,
            threshold: 5_000_000, forMs: 300_000, windowMs: 60_000),
        AlertRule(
            name: "error_rate", severity: .critical, summary: "More than 5 % of actions fail",
            expression: .ratio(
                .rate(Selector(metric: "mesh_actions_total", labels: ["outcome": "error"])), .rate(Selector(metric: "mesh_actions_total"))),
            scale: 100, grouping: .cluster, comparison: .greater, threshold: 5, forMs: 120_000, windowMs: 60_000),
        AlertRule(
            name: "cpu_high", severity: .critical, summary: "A process uses more than 80 % of a CPU core",
            expression: .rate(Selector(metric: "mesh_process_cpu_seconds")), scale: 100, grouping: .instance, comparison: .greater,
            threshold: 80, forMs: 60_000, windowMs: 30_000),
        AlertRule(
            name: "memory_high", severity: .critical, summary: "A process uses more than 85 % of its memory limit",
            expression: .ratio(
                .gauge(Selector(metric: "mesh_process_resident_memory_bytes")), .gauge(Selector(metric: "mesh_process_memory_limit_bytes"))),
            scale: 100, grouping: .instance, comparison: .greater, threshold: 85, forMs: 30_000, windowMs: 30_000),
        AlertRule(
            name: "task_consumer_at_max_ack_pending", severity: .warning,
            summary: "A task consumer has MaxAckPending tasks unacknowledged (no room for more)",
            expression: .ratio(
                .gauge(Selector(metric: "mesh_task_consumer_ack_pending")), .gauge(Selector(metric: "mesh_task_consumer_max_ack_pending"))),
            grouping: .series, comparison: .greaterOrEqual, threshold: 1, forMs: 60_000, windowMs: 60_000),
        AlertRule(
            name: "node_down", severity: .critical, summary: "An agent worker stopped reporting",
            expression: .gauge(Selector(metric: ClusterMetrics.instanceUpMetric, service: ServiceName.agentWorker.rawValue)),
            grouping: .instance, comparison: .less, threshold: 1, forMs: 10_000, windowMs: 10_000),
    ]

    /// Reads a rules file: its rules, plus the built-in ones unless it says `defaults: false`
    /// (a file rule replaces the built-in rule of the same name).
    /// - Throws: ``MeshError`` `invalid_argument` naming the file, rule and problem;
    ///   `too_large` for a file over ``maxFileBytes``.
    public static func load(path: String) throws(MeshError) -> [AlertRule] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw MeshError(.invalidArgument, "alert rules file \(path) cannot be read")
        }
        guard data.count <= maxFileBytes else { throw MeshError(.tooLarge, "alert rules file \(path) exceeds \(maxFileBytes) bytes") }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    /// Parses rules YAML (see the type's documentation for the format).
    /// - Throws: ``MeshError`` `invalid_argument` naming the rule and the problem.
    public static func parse(_ yaml: String, source: String = "rules") throws(MeshError) -> [AlertRule] {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: yaml) } catch {
            throw MeshError(.invalidArgument, "\(source): not valid YAML")
        }
        guard let root = loaded as? [String: Any] else { throw MeshError(.invalidArgument, "\(source): expected a mapping with `rules`") }
        try checkKeys(root, ["defaults", "rules"], "\(source)")
        let keepDefaults: Bool
        switch root["defaults"] {
        case nil: keepDefaults = true
        case let flag as Bool: keepDefaults = flag
        default: throw MeshError(.invalidArgument, "\(source): `defaults` must be true or false")
        }
        guard let list = (root["rules"] ?? [Any]()) as? [Any] else { throw MeshError(.invalidArgument, "\(source): `rules` must be a list") }
        guard list.count <= maxRules else { throw MeshError(.tooLarge, "\(source): more than \(maxRules) rules") }
        var rules: [AlertRule] = []
        for (index, item) in list.enumerated() {
            let rule = try parseRule(item, where: "\(source): rule \(index + 1)")
            guard !rules.contains(where: { $0.name == rule.name }) else {
                throw MeshError(.invalidArgument, "\(source): rule \(index + 1): duplicate name \(rule.name)")
            }
            rules.append(rule)
        }
        guard keepDefaults else { return rules }
        return defaults.filter { builtIn in !rules.contains { $0.name == builtIn.name } } + rules
    }

    static func parseRule(_ item: Any, where context: String) throws(MeshError) -> AlertRule {
        guard let map = item as? [String: Any] else { throw MeshError(.invalidArgument, "\(context): expected a mapping") }
        try checkKeys(map, ["name", "severity", "summary", "expr", "scale", "by", "op", "threshold", "for", "window"], context)
        guard let name = map["name"] as? String, Identifier.isValid(name) else {
            throw MeshError(.invalidArgument, "\(context): `name` must match [a-z0-9][a-z0-9_-]{0,62}")
        }
        let here = "\(context) (\(name))"
        let severity = try enumValue(map["severity"], AlertSeverity.self, default: .warning, "severity", here)
        let summary = try string(map["summary"], default: name, "summary", here)
        guard summary.utf8.count <= 200 else { throw MeshError(.invalidArgument, "\(here): `summary` exceeds 200 bytes") }
        guard let exprMap = map["expr"] else { throw MeshError(.invalidArgument, "\(here): `expr` is required") }
        let expression = try parseExpression(exprMap, here, depth: 0)
        let scale = try number(map["scale"], default: 1, "scale", here)
        let grouping = try enumValue(map["by"], Grouping.self, default: .cluster, "by", here)
        let comparison = try enumValue(map["op"], AlertComparison.self, default: .greater, "op", here)
        guard map["threshold"] != nil else { throw MeshError(.invalidArgument, "\(here): `threshold` is required") }
        let threshold = try number(map["threshold"], default: 0, "threshold", here)
        let forMs = try duration(map["for"], default: 0, "for", here)
        let windowMs = try duration(map["window"], default: 60_000, "window", here)
        guard windowMs >= 1000 else { throw MeshError(.invalidArgument, "\(here): `window` must be at least 1s") }
        return AlertRule(
            name: name, severity: severity, summary: summary, expression: expression, scale: scale, grouping: grouping,
            comparison: comparison, threshold: threshold, forMs: forMs, windowMs: windowMs)
    }

    static func parseExpression(_ item: Any, _ context: String, depth: Int) throws(MeshError) -> AlertExpression {
        guard depth < 4 else { throw MeshError(.invalidArgument, "\(context): `expr` nests too deep") }
        guard let map = item as? [String: Any] else { throw MeshError(.invalidArgument, "\(context): `expr` must be a mapping") }
        guard let type = map["type"] as? String else { throw MeshError(.invalidArgument, "\(context): `expr.type` is required") }
        if type == "ratio" {
            try checkKeys(map, ["type", "numerator", "denominator"], context)
            guard let numerator = map["numerator"], let denominator = map["denominator"] else {
                throw MeshError(.invalidArgument, "\(context): a ratio needs `numerator` and `denominator`")
            }
            return .ratio(
                try parseExpression(numerator, context, depth: depth + 1), try parseExpression(denominator, context, depth: depth + 1))
        }
        try checkKeys(map, ["type", "metric", "labels", "service", "instance", "quantile"], context)
        guard let metric = map["metric"] as? String, MetricName.isValid(metric) else {
            throw MeshError(.invalidArgument, "\(context): `expr.metric` must be a metric name")
        }
        var labels: [String: String] = [:]
        if let raw = map["labels"] {
            let limits = SnapshotLimits()
            guard let pairs = raw as? [String: Any], pairs.count <= limits.maxLabels else {
                throw MeshError(.invalidArgument, "\(context): `expr.labels` must be a mapping of at most \(limits.maxLabels) labels")
            }
            for (key, value) in pairs {
                guard SnapshotValidation.isLabelName(key, limit: limits.maxNameLength), let text = scalarText(value), text.utf8.count <= limits.maxNameLength else {
                    throw MeshError(.invalidArgument, "\(context): `expr.labels` has a bad label")
                }
                labels[key] = text
            }
        }
        let service = try optionalToken(map["service"], "expr.service", context)
        let instance = try optionalToken(map["instance"], "expr.instance", context)
        let selector = Selector(metric: metric, labels: labels, service: service, instance: instance)
        switch type {
        case "rate": return .rate(selector)
        case "gauge": return .gauge(selector)
        case "quantile":
            let q = try number(map["quantile"], default: 0.99, "quantile", context)
            guard q > 0, q <= 1 else { throw MeshError(.invalidArgument, "\(context): `expr.quantile` must be in (0, 1]") }
            return .quantile(selector, q)
        default:
            throw MeshError(.invalidArgument, "\(context): `expr.type` must be rate, gauge, quantile or ratio")
        }
    }

    /// Parses `500ms`, `30s`, `5m`, `1h` or a bare number of seconds, up to one day.
    static func parseDuration(_ text: String) -> Int64? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if suffix == "s" && number.hasSuffix("m") { continue }
            guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
            let ms = value * factor
            return ms <= 86_400_000 ? Int64(ms.rounded()) : nil
        }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= 86_400 else { return nil }
        return Int64((seconds * 1000).rounded())
    }

    // MARK: Field helpers

    private static func checkKeys(_ map: [String: Any], _ allowed: Set<String>, _ context: String) throws(MeshError) {
        if let unknown = map.keys.filter({ !allowed.contains($0) }).sorted().first {
            throw MeshError(.invalidArgument, "\(context): unknown key `\(unknown)`")
        }
    }

    private static func scalarText(_ value: Any) -> String? {
        switch value {
        case let text as String: text
        case let number as Int: String(number)
        case let flag as Bool: String(flag)
        default: nil
        }
    }

    private static func string(_ value: Any?, default fallback: String, _ field: String, _ context: String) throws(MeshError) -> String {
        guard let value else { return fallback }
        guard let text = value as? String else { throw MeshError(.invalidArgument, "\(context): `\(field)` must be text") }
        return text
    }

    private static func optionalToken(_ value: Any?, _ field: String, _ context: String) throws(MeshError) -> String? {
        guard let value else { return nil }
        guard let text = value as? String, Identifier.isValid(text) else {
            throw MeshError(.invalidArgument, "\(context): `\(field)` must be a service or instance id")
        }
        return text
    }

    private static func number(_ value: Any?, default fallback: Double, _ field: String, _ context: String) throws(MeshError) -> Double {
        guard let value else { return fallback }
        let number: Double? = switch value {
        case let int as Int: Double(int)
        case let double as Double: double
        default: nil
        }
        guard let number, number.isFinite else { throw MeshError(.invalidArgument, "\(context): `\(field)` must be a finite number") }
        return number
    }

    private static func duration(_ value: Any?, default fallback: Int64, _ field: String, _ context: String) throws(MeshError) -> Int64 {
        guard let value else { return fallback }
        let text: String? = switch value {
        case let text as String: text
        case let int as Int: String(int)
        default: nil
        }
        guard let text, let ms = parseDuration(text) else {
            throw MeshError(.invalidArgument, "\(context): `\(field)` must be a duration such as 30s, 5m, 1h (at most 1 day)")
        }
        return ms
    }

    private static func enumValue<E: RawRepresentable & CaseIterable>(
        _ value: Any?, _: E.Type, default fallback: E, _ field: String, _ context: String
    ) throws(MeshError) -> E where E.RawValue == String {
        guard let value else { return fallback }
        guard let text = value as? String, let parsed = E(rawValue: text) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw MeshError(.invalidArgument, "\(context): `\(field)` must be one of \(allowed)")
        }
        return parsed
    }
}
