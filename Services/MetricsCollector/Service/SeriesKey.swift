public import MeshCore

/// Identifies one metric series inside a process: its name and its labels (sorted by key,
/// so equal label sets compare equal whatever order they arrived in).
public struct SeriesKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Prometheus form `mesh_<thing>_<unit>`.
    public let name: String
    /// Label pairs sorted by key.
    public let labels: [LabelPair]

    /// One label.
    public struct LabelPair: Hashable, Sendable {
        /// The label's name.
        public let key: String
        /// The label's value.
        public let value: String
    }

    /// - Parameters:
    ///   - name: the metric's name.
    ///   - labels: its labels, in any order.
    public init(name: String, labels: [String: String]) {
        self.name = name
        self.labels = labels.map { LabelPair(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }
    }

    /// The labels as a dictionary.
    public var labelDictionary: [String: String] {
        Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// Whether every matcher's label is present with the given value.
    public func matches(_ matchers: [String: String]) -> Bool {
        matchers.allSatisfy { matcher in labels.contains { $0.key == matcher.key && $0.value == matcher.value } }
    }

    public static func < (lhs: SeriesKey, rhs: SeriesKey) -> Bool {
        if lhs.name != rhs.name { return lhs.name < rhs.name }
        return lhs.description < rhs.description
    }

    public var description: String {
        "\(name){" + labels.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
    }
}

/// One process of the mesh as the collector knows it: `(service, instance)`.
public struct InstanceKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The service's name, e.g. `mesh-agent-worker`.
    public let service: String
    /// The instance id, e.g. `worker-1`.
    public let instance: String

    public init(service: String, instance: String) {
        self.service = service
        self.instance = instance
    }

    public static func < (lhs: InstanceKey, rhs: InstanceKey) -> Bool {
        (lhs.service, lhs.instance) < (rhs.service, rhs.instance)
    }

    public var description: String { "\(service)/\(instance)" }
}

/// A cumulative log-linear histogram with its unit, as kept by the collector.
public struct UnitHistogram: Sendable, Hashable {
    /// Unit of every value: `ns`, `us`, `ms`, `s`, `bytes`, or empty.
    public var unit: String
    /// The observations.
    public var histogram: LogLinearHistogram

    public init(unit: String, histogram: LogLinearHistogram) {
        self.unit = unit
        self.histogram = histogram
    }

    /// Seconds per unit for time units, nil otherwise.
    public var secondsPerUnit: Double? { Self.secondsPerUnit(unit) }

    /// Seconds per unit for `ns`, `us`, `ms`, `s`; nil for anything else.
    public static func secondsPerUnit(_ unit: String) -> Double? {
        switch unit {
        case "ns": 1e-9
        case "us": 1e-6
        case "ms": 1e-3
        case "s": 1
        default: nil
        }
    }
}

extension LogLinearHistogram {
    /// The observations of `self` that are not in `earlier` (bucket-wise difference), for a
    /// cumulative histogram read at two times. Buckets that went down (a reset the caller
    /// did not notice) count as zero. Precisions must be equal; otherwise both are folded to
    /// the smaller one first. Min and max are the bounds of the lowest and highest
    /// remaining bucket, clamped to `self`'s min and max.
    public func subtracting(_ earlier: LogLinearHistogram) -> LogLinearHistogram {
        let p = Swift.min(precisionBits, earlier.precisionBits)
        let later = precisionBits == p ? self : LogLinearHistogram(precisionBits: p).merged(with: self)
        let before = earlier.precisionBits == p ? earlier : LogLinearHistogram(precisionBits: p).merged(with: earlier)
        var counts = later.counts
        for (index, value) in before.counts.enumerated() where index < counts.count {
            counts[index] = counts[index] >= value ? counts[index] - value : 0
        }
        guard let first = counts.firstIndex(where: { $0 > 0 }), let last = counts.lastIndex(where: { $0 > 0 }) else {
            return LogLinearHistogram(precisionBits: p)
        }
        let low = Swift.max(later.min, Self.lowerBound(ofBucket: first, precisionBits: p))
        let high = Swift.min(later.max, Self.upperBound(ofBucket: last, precisionBits: p))
        let sum = later.count >= before.count ? later.sum &- before.sum : later.sum
        // The initializer validates the range; counts came from valid histograms.
        return (try? LogLinearHistogram(
            precisionBits: p, firstBucket: first, counts: Array(counts[first...last]), sum: sum, min: Swift.min(low, high),
            max: Swift.max(low, high))) ?? LogLinearHistogram(precisionBits: p)
    }
}
