import MeshCore

/// Renders the cluster view in the Prometheus text format (version 0.0.4).
///
/// - Every series of every process, with `service` and `instance` labels added to its own:
///   counters as continuous totals (restarts folded in), gauges as last reported,
///   histograms as Prometheus histograms (`_bucket`/`_sum`/`_count`; time units converted to
///   seconds) whose buckets are computed from the merged log-linear buckets.
/// - A cluster-merged family beside each: `mesh_cluster_<rest>` for `mesh_<rest>` with the
///   `service` label and the series' own labels (no `instance`): counters summed (including
///   instances the collector has forgotten, so they never go down), histograms merged
///   bucket-wise, gauges summed (except uptimes).
/// - `mesh_instance_up` (1 while a process's snapshots arrive) and
///   `mesh_instance_restarts_total` per process.
///
/// A log-linear bucket lies under a Prometheus `le` bound when its upper bound does, so
/// bucket counts are exact to within one log-linear bucket (≈ 3 % of the value at p = 5).
public enum PrometheusExposition {
    /// `le` bounds of time histograms, in seconds.
    public static let secondBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// `le` bounds of other histograms (powers of 4 up to 4^15).
    public static let otherBounds: [Double] = (0...15).map { pow4($0) }

    private static func pow4(_ exponent: Int) -> Double { Double(UInt64(1) << UInt64(2 * exponent)) }

    /// The cluster-merged family name of `name`.
    public static func clusterName(_ name: String) -> String {
        name.hasPrefix("mesh_") ? "mesh_cluster_" + name.dropFirst("mesh_".count) : "cluster_" + name
    }

    private struct Family {
        var kind: MetricKind
        var lines: [String] = []
    }

    /// The exposition of `cluster` at `now` (collector's clock, ms).
    public static func render(_ cluster: ClusterMetrics, now: Int64) -> [UInt8] {
        var families: [String: Family] = [:]
        func add(_ name: String, _ kind: MetricKind, _ lines: [String]) {
            if families[name] == nil { families[name] = Family(kind: kind) }
            guard families[name]!.kind == kind else { return }
            families[name]!.lines += lines
        }
        let views = cluster.view(now: now)
        var clusterCounters: [String: [SeriesKey: UInt64]] = cluster.retiredCounters
        var clusterGauges: [String: [SeriesKey: Double]] = [:]
        var clusterHistograms: [String: [SeriesKey: UnitHistogram]] = cluster.retiredHistograms
        for (instance, view) in views.sorted(by: { $0.key < $1.key }) {
            let base = ["service": instance.service, "instance": instance.instance]
            for (key, value) in view.counters.sorted(by: { $0.key < $1.key }) {
                add(key.name, .counter, [sample(key.name, base, key, String(value))])
                clusterCounters[instance.service, default: [:]][key, default: 0] &+= value
            }
            for (key, value) in view.gauges.sorted(by: { $0.key < $1.key }) {
                add(key.name, .gauge, [sample(key.name, base, key, number(value))])
                if !key.name.hasSuffix("_uptime_seconds") { clusterGauges[instance.service, default: [:]][key, default: 0] += value }
            }
            for (key, value) in view.histograms.sorted(by: { $0.key < $1.key }) {
                add(key.name, .histogram, histogramLines(key.name, base, key, value))
                if let earlier = clusterHistograms[instance.service]?[key] {
                    if earlier.unit == value.unit {
                        clusterHistograms[instance.service]![key] = UnitHistogram(
                            unit: value.unit, histogram: earlier.histogram.merged(with: value.histogram))
                    }
                } else {
                    clusterHistograms[instance.service, default: [:]][key] = value
                }
            }
            let restarts = ClusterMetrics.instanceRestartsMetric
            add(restarts, .counter, [sample(restarts, base, SeriesKey(name: "", labels: [:]), String(view.restarts))])
        }
        for (service, series) in clusterCounters.sorted(by: { $0.key < $1.key }) {
            for (key, value) in series.sorted(by: { $0.key < $1.key }) {
                add(clusterName(key.name), .counter, [sample(clusterName(key.name), ["service": service], key, String(value))])
            }
        }
        for (service, series) in clusterGauges.sorted(by: { $0.key < $1.key }) {
            for (key, value) in series.sorted(by: { $0.key < $1.key }) {
                add(clusterName(key.name), .gauge, [sample(clusterName(key.name), ["service": service], key, number(value))])
            }
        }
        for (service, series) in clusterHistograms.sorted(by: { $0.key < $1.key }) {
            for (key, value) in series.sorted(by: { $0.key < $1.key }) {
                add(clusterName(key.name), .histogram, histogramLines(clusterName(key.name), ["service": service], key, value))
            }
        }
        var text = ""
        for (name, family) in families.sorted(by: { $0.key < $1.key }) {
            text += "# TYPE \(name) \(family.kind.rawValue)\n"
            for line in family.lines { text += line + "\n" }
        }
        return Array(text.utf8)
    }

    static func histogramLines(_ name: String, _ base: [String: String], _ key: SeriesKey, _ value: UnitHistogram) -> [String] {
        let scale = value.secondsPerUnit ?? 1
        let bounds = value.secondsPerUnit == nil ? otherBounds : secondBounds
        let histogram = value.histogram
        var cumulative = [UInt64](repeating: 0, count: bounds.count)
        for (index, count) in histogram.counts.enumerated() where count > 0 {
            let upper = Double(LogLinearHistogram.upperBound(ofBucket: index, precisionBits: histogram.precisionBits)) * scale
            for (position, bound) in bounds.enumerated() where upper <= bound { cumulative[position] &+= count }
        }
        var lines: [String] = []
        for (position, bound) in bounds.enumerated() {
            lines.append(sample(name + "_bucket", base, key, String(cumulative[position]), extra: ("le", number(bound))))
        }
        lines.append(sample(name + "_bucket", base, key, String(histogram.count), extra: ("le", "+Inf")))
        lines.append(sample(name + "_sum", base, key, number(Double(histogram.sum) * scale)))
        lines.append(sample(name + "_count", base, key, String(histogram.count)))
        return lines
    }

    static func sample(_ name: String, _ base: [String: String], _ key: SeriesKey, _ value: String, extra: (String, String)? = nil) -> String {
        var pairs = base.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        pairs += key.labels.map { ($0.key, $0.value) }
        if let extra { pairs.append(extra) }
        guard !pairs.isEmpty else { return "\(name) \(value)" }
        return "\(name){" + pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "} \(value)"
    }

    /// Escapes a label value: backslash, double quote and line feed.
    static func escape(_ value: String) -> String {
        var result = ""
        result.reserveCapacity(value.utf8.count)
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    /// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
